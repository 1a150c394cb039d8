import { AuditEvent } from "../audit/audit-event.entity.js";
import { BlockedKey, Certificate } from "../certificates/certificate.entity.js";
import { CrlState } from "../certificates/crl-state.entity.js";
import { CertificateTally, CsrTally } from "../certificates/tally.entity.js";
import { CertificateSigningRequest } from "../csrs/csr.entity.js";
import { Delegation } from "../delegations/delegation.entity.js";
import { KmsCertificate } from "../kms/kms-certificate.entity.js";
import { KmsRotationApproval } from "../kms/kms-rotation-approval.entity.js";
import { EmailDelivery } from "../notifications/email-delivery.entity.js";
import { Notification } from "../notifications/notification.entity.js";
import { ApiToken } from "../officers/api-token.entity.js";
import { EnrollmentCode } from "../officers/enrollment-code.entity.js";
import { Officer } from "../officers/officer.entity.js";
import { Organization } from "../organizations/organization.entity.js";

/** Every persisted entity; listed explicitly so the compiled build needs no globbing. */
export const ENTITIES = [
  Organization,
  Officer,
  ApiToken,
  AuditEvent,
  Notification,
  CertificateSigningRequest,
  Certificate,
  BlockedKey,
  Delegation,
  CrlState,
  EmailDelivery,
  KmsCertificate,
  EnrollmentCode,
  KmsRotationApproval,
  CertificateTally,
  CsrTally,
];
