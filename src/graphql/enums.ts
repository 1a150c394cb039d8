import { registerEnumType } from "type-graphql";
import {
  CertificateKind,
  CertificateStatus,
  CsrStatus,
  DelegationStatus,
  Environment,
  KmsCertificatePurpose,
  NotificationType,
  OfficerStatus,
  OrganizationKind,
  RevocationReason,
  Role,
} from "../kernel/domain.js";

let registered = false;

/** Registers the domain enums as GraphQL enums, with the contract's descriptions. Idempotent. */
export function registerEnums(): void {
  if (registered) return;
  registered = true;
  registerEnumType(OrganizationKind, {
    name: "OrganizationKind",
    valuesConfig: {
      PARTICIPANT: { description: "A participant that exchanges keys for its own service." },
      MSP: { description: "A Member Service Provider that operates a service on a participant's behalf." },
      KMS: { description: "The key management service itself; its officers are KMS operators." },
    },
  });
  registerEnumType(Role, {
    name: "Role",
    valuesConfig: {
      SECURITY_OFFICER: { description: "Security officer of a participant or MSP organization." },
      KMS_OPERATOR: { description: "Member of the KMS team: signs CSRs, initiates delegations, sees everything." },
    },
  });
  registerEnumType(OfficerStatus, { name: "OfficerStatus" });
  registerEnumType(Environment, { name: "Environment", valuesConfig: { MTF: { description: "Mastercard Test Facility." } } });
  registerEnumType(CertificateKind, {
    name: "CertificateKind",
    valuesConfig: {
      MTLS_CLIENT: { description: "Client certificate for mutual TLS." },
      SIGNING: { description: "Digital signing (non-repudiation) certificate." },
      ENCRYPTION: { description: "Digital encryption certificate." },
    },
  });
  registerEnumType(CsrStatus, { name: "CsrStatus" });
  registerEnumType(CertificateStatus, {
    name: "CertificateStatus",
    valuesConfig: { ACTIVE: { description: "Valid now and not revoked." }, EXPIRED: { description: "Past notAfter." } },
  });
  registerEnumType(RevocationReason, { name: "RevocationReason", description: "RFC 5280 CRLReason values that this system accepts." });
  registerEnumType(DelegationStatus, {
    name: "DelegationStatus",
    valuesConfig: { PENDING_APPROVAL: { description: "Requested by the KMS; waiting for the participant's confirmation." } },
  });
  registerEnumType(NotificationType, {
    name: "NotificationType",
    valuesConfig: {
      KMS_CERTIFICATE_PUBLISHED: { description: "The KMS published a new certificate of its own (rotation)." },
      OFFICER_ENROLLED: { description: "An officer redeemed their enrollment code." },
      CSR_APPROVED: { description: "The first of two operators approved a CSR under dual control." },
    },
  });
  registerEnumType(KmsCertificatePurpose, {
    name: "KmsCertificatePurpose",
    description:
      "What a certificate of the KMS itself is for; participants use it to check the KMS's signatures, to encrypt to the KMS, or to pin its TLS server.",
  });
}
