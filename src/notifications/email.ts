import { randomUUID } from "node:crypto";
import { type EntityManager, In } from "typeorm";
import { Certificate } from "../certificates/certificate.entity.js";
import type { Clock } from "../clock.js";
import { CertificateSigningRequest } from "../csrs/csr.entity.js";
import { Delegation } from "../delegations/delegation.entity.js";
import { DelegationStatus, NotificationType, OfficerStatus, OrganizationKind } from "../domain.js";
import { Officer } from "../officers/officer.entity.js";
import { Organization } from "../organizations/organization.entity.js";
import { EmailDelivery, EmailDeliveryStatus } from "./email-delivery.entity.js";
import { type Notification, NotificationAudience } from "./notification.entity.js";

interface Template {
  title: string;
  /** What the reader should do now. */
  next: string;
}

const TEMPLATES: Record<NotificationType, Template> = {
  [NotificationType.OFFICER_REGISTERED]: {
    title: "Security officer registered",
    next: "Nothing, if you expected this. If you did not, have another officer of the organization or the KMS team deactivate this officer at once.",
  },
  [NotificationType.OFFICER_DEACTIVATED]: {
    title: "Security officer deactivated",
    next: "If this is unexpected, contact the KMS team. The organization needs at least two active security officers to submit certificate requests.",
  },
  [NotificationType.OFFICER_ENROLLED]: {
    title: "Security officer enrolled",
    next: "Nothing, if you expected this. If you did not, have another officer of the organization or the KMS team deactivate this officer at once.",
  },
  [NotificationType.CSR_APPROVED]: {
    title: "CSR approved, awaiting a second operator",
    next: "KMS operators: another operator than the one who approved reviews the request and signs or rejects it.",
  },
  [NotificationType.CSR_SUBMITTED]: {
    title: "CSR submitted",
    next: "The KMS team will sign or reject the request; you will be notified either way. If nobody in your organization submitted it, cancel it in KeyPortal and tell the KMS team.",
  },
  [NotificationType.CSR_SIGNED]: {
    title: "CSR signed",
    next: "Download the certificate from KeyPortal (PEM, DER, chain or PKCS#7) and install it with the private key you generated for this request.",
  },
  [NotificationType.CSR_REJECTED]: {
    title: "CSR rejected",
    next: "Read the reason above, correct the request and submit a new one.",
  },
  [NotificationType.CERTIFICATE_EXPIRING]: {
    title: "Certificate expiring",
    next: "Renew it before it expires: generate a new key and CSR on your own machine and submit it in KeyPortal as a renewal. The old and new certificates overlap until the old one expires.",
  },
  [NotificationType.CERTIFICATE_EXPIRED]: {
    title: "Certificate expired",
    next: "The certificate is no longer valid. If you still need one, generate a new key and submit a renewal request in KeyPortal.",
  },
  [NotificationType.CERTIFICATE_REVOKED]: {
    title: "Certificate revoked",
    next: "Stop using the certificate and its private key. If you still need one, generate a new key and submit a new request.",
  },
  [NotificationType.DELEGATION_REQUESTED]: {
    title: "Delegation requested",
    next: "Officers of the participant: review the delegation in KeyPortal and approve or decline it. The MSP can do nothing for you until it is approved.",
  },
  [NotificationType.DELEGATION_APPROVED]: {
    title: "Delegation approved",
    next: "The MSP's officers may now submit requests and receive certificates for the delegated kinds and environment.",
  },
  [NotificationType.DELEGATION_DECLINED]: {
    title: "Delegation declined",
    next: "Nothing: the MSP has no access. Contact the KMS team if this was a mistake.",
  },
  [NotificationType.DELEGATION_REVOKED]: {
    title: "Delegation revoked",
    next: "The MSP no longer has access to the participant's key exchange, effective immediately.",
  },
  [NotificationType.KMS_CERTIFICATE_PUBLISHED]: {
    title: "New KMS certificate",
    next: "Download the new KMS certificate from KeyPortal and add it to your configuration before the previous one expires.",
  },
};

const MAX_SUBJECT = 300;
const oneLine = (s: string) => s.replace(/[\r\n\t]+/g, " ").trim();

/**
 * Turns each notification into email deliveries, inside the notification's
 * own transaction (an Outbox listener): one row per recipient, sent after
 * commit by the EmailDeliveryWorker. Recipients: the contact email and the
 * active officers of the organization, of the second organization (the MSP
 * of a delegation event), of every MSP whose active delegation covers the
 * key material, and of every participant and MSP for audience rows. Emails
 * say what happened and what to do; they never carry a token or a key.
 */
export class NotificationEmails {
  constructor(
    private readonly clock: Clock,
    private readonly publicUrl: string,
  ) {}

  readonly onNotification = async (em: EntityManager, n: Notification): Promise<void> => {
    const recipients = await this.recipients(em, n);
    if (recipients.length === 0) return;
    const { subject, body } = await this.compose(em, n);
    const now = this.clock.now();
    const rows = recipients.map((recipient) =>
      em.create(EmailDelivery, {
        id: randomUUID(),
        notificationId: n.id,
        recipient,
        subject,
        body,
        status: EmailDeliveryStatus.PENDING,
        attempts: 0,
        nextAttemptAt: now,
        claimedUntil: null,
        claimedBy: null,
        lastError: null,
        sentAt: null,
        messageId: null,
        createdAt: now,
      }),
    );
    for (let i = 0; i < rows.length; i += 100) await em.insert(EmailDelivery, rows.slice(i, i + 100));
  };

  async recipients(em: EntityManager, n: Notification): Promise<string[]> {
    const organizationIds = new Set<string>();
    if (n.organizationId) organizationIds.add(n.organizationId);
    if (n.secondOrganizationId) organizationIds.add(n.secondOrganizationId);
    if (n.audience === NotificationAudience.PARTICIPANTS_AND_MSPS) {
      const all = await em.find(Organization, { where: { kind: In([OrganizationKind.PARTICIPANT, OrganizationKind.MSP]) }, select: { id: true } });
      for (const org of all) organizationIds.add(org.id);
    }
    if (n.organizationId && n.certificateKind && n.environment) {
      const delegations = await em.find(Delegation, {
        where: { participantId: n.organizationId, status: DelegationStatus.ACTIVE, environment: n.environment as Delegation["environment"] },
      });
      for (const d of delegations) if ((d.kinds as string[]).includes(n.certificateKind)) organizationIds.add(d.mspId);
    }
    if (organizationIds.size === 0) return [];
    const ids = [...organizationIds];
    const organizations = await em.find(Organization, { where: { id: In(ids) } });
    const officers = await em.find(Officer, { where: { organizationId: In(ids), status: OfficerStatus.ACTIVE }, order: { createdAt: "ASC" } });
    const seen = new Map<string, string>();
    for (const address of [...organizations.map((o) => o.contactEmail), ...officers.map((o) => o.email)]) {
      const key = address.toLowerCase();
      if (!seen.has(key)) seen.set(key, address);
    }
    return [...seen.values()];
  }

  async compose(em: EntityManager, n: Notification): Promise<{ subject: string; body: string }> {
    const template = TEMPLATES[n.type];
    // One after the other: a transaction is one connection, and pg refuses overlapping queries on it.
    const organization = n.organizationId ? await em.findOne(Organization, { where: { id: n.organizationId } }) : null;
    const certificate = n.certificateId ? await em.findOne(Certificate, { where: { id: n.certificateId } }) : null;
    const csr = n.csrId ? await em.findOne(CertificateSigningRequest, { where: { id: n.csrId } }) : null;
    const officer = n.officerId ? await em.findOne(Officer, { where: { id: n.officerId } }) : null;
    const commonName = certificate?.commonName ?? csr?.commonName ?? null;
    const environment = n.environment ?? certificate?.environment ?? csr?.environment ?? null;
    let about: string;
    if (commonName) about = `${commonName}${environment ? ` (${environment})` : ""}`;
    else if (officer) about = `${officer.name}, ${organization?.name ?? "your organization"}`;
    else about = organization?.name ?? "all participants and MSPs";
    const title = n.type === NotificationType.CERTIFICATE_EXPIRING && n.daysUntilExpiry ? `Certificate expires within ${n.daysUntilExpiry} days` : template.title;
    const subject = oneLine(`[KeyPortal] ${title}: ${about}`).slice(0, MAX_SUBJECT);

    const facts: string[] = [];
    if (organization) facts.push(`Organization: ${organization.name}`);
    if (certificate) {
      facts.push(`Certificate: ${certificate.subject}`);
      facts.push(`Serial number: ${certificate.serialNumber}`);
      facts.push(`Valid until: ${certificate.notAfter.toISOString()}`);
    } else if (csr) {
      facts.push(`Request: ${csr.subject}`);
    }
    const kind = n.certificateKind ?? certificate?.kind ?? csr?.kind;
    if (kind) facts.push(`Kind: ${kind}`);
    if (environment) facts.push(`Environment: ${environment}`);
    if (officer) facts.push(`Officer: ${officer.name} <${officer.email}>`);
    const body = [
      n.message,
      "",
      ...facts,
      "",
      "What to do next:",
      template.next,
      "",
      `KeyPortal: ${this.publicUrl}/graphql`,
      `Notification ${n.id} of ${n.occurredAt.toISOString()} (${n.type}).`,
      "",
      "You receive this as the certificate management contact or a security officer of the organization concerned.",
      "KeyPortal never sends API tokens or private keys by email, and never asks for them.",
      "",
    ].join("\n");
    return { subject, body };
  }
}
