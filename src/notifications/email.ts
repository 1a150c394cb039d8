import { randomUUID } from "node:crypto";
import { type EntityManager, In } from "typeorm";
import { Certificate } from "../certificates/certificate.entity.js";
import type { Clock } from "../kernel/clock.js";
import { CertificateSigningRequest } from "../csrs/csr.entity.js";
import { Delegation } from "../delegations/delegation.entity.js";
import { KmsCertificate } from "../kms/kms-certificate.entity.js";
import { certificateFileStem, downloadCommand } from "../next-steps.js";
import { DelegationStatus, NotificationType, OfficerStatus, OrganizationKind } from "../kernel/domain.js";
import { Officer } from "../officers/officer.entity.js";
import { Organization } from "../organizations/organization.entity.js";
import { EmailDelivery, EmailDeliveryStatus } from "./email-delivery.entity.js";
import { type Notification, NotificationAudience } from "./notification.entity.js";

/** Controls (CR, LF, ESC, NUL...), bidirectional overrides and lone surrogates: never written raw into a mail. */
const UNPRINTABLE = /[\p{Cc}\p{Cs}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/**
 * Each line of a mail as text a reader sees as it is: the characters above
 * as \u{XXXX}. Subjects and names come from requests; a CR LF in one must
 * not start a new line (or header), nor U+202E turn the text around.
 */
export function escapeUnprintable(line: string): string {
  return line.replace(UNPRINTABLE, (ch) => `\\u{${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}}`);
}

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
    next: "The KMS team will sign or reject the request; you will be notified either way. If nobody in your organization submitted it, cancel it and tell the KMS team.",
  },
  [NotificationType.CSR_SIGNED]: {
    title: "CSR signed",
    next: "Download the certificate (PEM, DER, chain or PKCS#7) and install it with the private key you generated for this request.",
  },
  [NotificationType.CSR_REJECTED]: {
    title: "CSR rejected",
    next: "Read the reason above, correct the request and submit a new one.",
  },
  [NotificationType.CERTIFICATE_EXPIRING]: {
    title: "Certificate expiring",
    next: "Renew it before it expires: make a new key and CSR on your own machine and submit them as a renewal (keyportal renew does both). The old and new certificates overlap until the old one expires.",
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
    next: "Download the new KMS certificate and add it to your configuration before the previous one expires.",
  },
};

const MAX_SUBJECT = 300;


/** What a notification is about, as loaded for its email. */
export interface Subjects {
  organization: Organization | null;
  certificate: Certificate | null;
  csr: CertificateSigningRequest | null;
  officer: Officer | null;
  delegation: Delegation | null;
  kmsCertificate: KmsCertificate | null;
}

/** The fields of a notification that decide its recipients. */
export type Addressing = Pick<Notification, "organizationId"> &
  Partial<Pick<Notification, "secondOrganizationId" | "audience" | "certificateKind" | "environment">>;

/**
 * The exact commands and URLs for the next step, by type: what the officer
 * types (keyportal CLI) or fetches (REST). Ids only; nothing secret.
 */
function nextCommands(n: Notification, s: Subjects, url: string): string[] {
  const { certificate: c, csr, delegation: d, kmsCertificate: k } = s;
  switch (n.type) {
    case NotificationType.CSR_SIGNED:
      if (!c) return [];
      return [
        `  ${downloadCommand(c)}`,
        `  or: curl -H "Authorization: Bearer $KEYPORTAL_TOKEN" -o ${certificateFileStem(c.commonName)}.pem ${url}/certificates/${c.id}.pem`,
        `  (other forms: ${url}/certificates/${c.id}.der, .p7b, .chain.pem; CA chain: ${url}/ca/${c.environment}/chain.pem)`,
      ];
    case NotificationType.CSR_SUBMITTED:
      if (!csr) return [];
      return [`  keyportal status --csr ${csr.id}`, `  if nobody of yours submitted it: keyportal cancel --csr ${csr.id}`];
    case NotificationType.CSR_APPROVED:
      return csr ? [`  another operator (not the approver): keyportal sign --csr ${csr.id}`] : [];
    case NotificationType.CSR_REJECTED:
      if (!csr) return [];
      return [
        `  keyportal csr --kind ${csr.kind} --cn "${csr.commonName.replace(/["\\$`]/g, "")}" --organization-id ${csr.organizationId} --key <new key file> --out <new csr file>`,
        `  keyportal submit --csr <new csr file> --kind ${csr.kind} --environment ${csr.environment} --organization-id ${csr.organizationId}`,
      ];
    case NotificationType.CERTIFICATE_EXPIRING:
    case NotificationType.CERTIFICATE_EXPIRED:
      if (!c) return [];
      return [`  keyportal renew --certificate ${c.id} --key <new key file> --out <new csr file>`, `  the certificate: ${url}/certificates/${c.id}.pem`];
    case NotificationType.CERTIFICATE_REVOKED:
      if (!c) return [];
      return [`  keyportal status --certificate ${c.id}`, `  the CRL that lists it: ${url}/crl/${c.environment}.crl`];
    case NotificationType.DELEGATION_REQUESTED:
      if (!d) return [];
      return [`  keyportal delegations approve --delegation ${d.id}`, `  or: keyportal delegations decline --delegation ${d.id} --reason "<why>"`];
    case NotificationType.DELEGATION_APPROVED:
    case NotificationType.DELEGATION_DECLINED:
    case NotificationType.DELEGATION_REVOKED:
      return d ? [`  keyportal delegations list`] : [];
    case NotificationType.KMS_CERTIFICATE_PUBLISHED:
      if (!k) return [];
      return [
        `  curl -o kms-${k.environment.toLowerCase()}-${k.purpose.toLowerCase()}.pem ${url}/kms/${k.environment}/${k.purpose.toLowerCase()}.pem`,
        `  (with its chain: ${url}/kms/${k.environment}/${k.purpose.toLowerCase()}.chain.pem; no token needed)`,
      ];
    default:
      return [];
  }
}
const oneLine = (s: string) => s.replace(/[\r\n\t]+/g, " ").trim();

/**
 * Turns each notification into email deliveries, inside the notification's
 * own transaction (written by the Outbox with the notification): one row
 * per recipient, sent after commit by the EmailDeliveryWorker. Recipients:
 * the contact email and the active officers of the organization, of the
 * second organization (the MSP of a delegation event), of every MSP whose
 * active delegation covers the key material, and of every participant and
 * MSP for audience rows. A mutation may find the recipients and the
 * subjects before its transaction (Mutations' prepare step), so that only
 * the INSERT is left inside it. Emails say what happened and what to do;
 * they never carry a token or a key.
 */
export class NotificationEmails {
  constructor(
    private readonly clock: Clock,
    private readonly publicUrl: string,
  ) {}

  /** Writes the deliveries of `n` in one multi-row INSERT (per 100 recipients). */
  async write(em: EntityManager, n: Notification, recipients: readonly string[], subjects: Subjects): Promise<void> {
    if (recipients.length === 0) return;
    const { subject, body } = this.composeFrom(n, subjects);
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
    for (let i = 0; i < rows.length; i += 100) {
      await em.createQueryBuilder().insert().into(EmailDelivery).values(rows.slice(i, i + 100)).updateEntity(false).execute();
    }
  }

  /** Loads what `n` is about, except what `known` already holds (a subject given as null is known to be none). */
  async subjects(em: EntityManager, n: Notification, known: Partial<Subjects> = {}): Promise<Subjects> {
    // One after the other: a transaction is one connection, and pg refuses overlapping queries on it.
    const load = async <E extends object>(key: keyof Subjects, entity: new () => E, id: string | null | undefined): Promise<E | null> => {
      if (known[key] !== undefined) return known[key] as unknown as E | null;
      return id ? em.findOne(entity as never, { where: { id } as never }) : null;
    };
    return {
      organization: await load("organization", Organization, n.organizationId),
      certificate: await load("certificate", Certificate, n.certificateId),
      csr: await load("csr", CertificateSigningRequest, n.csrId),
      officer: await load("officer", Officer, n.officerId),
      delegation: await load("delegation", Delegation, n.delegationId),
      kmsCertificate: await load("kmsCertificate", KmsCertificate, n.kmsCertificateId),
    };
  }

  async recipients(em: EntityManager, n: Addressing): Promise<string[]> {
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
    return this.composeFrom(n, await this.subjects(em, n));
  }

  composeFrom(n: Notification, subjects: Subjects): { subject: string; body: string } {
    const template = TEMPLATES[n.type];
    const { organization, certificate, csr, officer, delegation, kmsCertificate } = subjects;
    const commonName = certificate?.commonName ?? csr?.commonName ?? null;
    const environment = n.environment ?? certificate?.environment ?? csr?.environment ?? kmsCertificate?.environment ?? null;
    let about: string;
    if (commonName) about = `${commonName}${environment ? ` (${environment})` : ""}`;
    else if (officer) about = `${officer.name}, ${organization?.name ?? "your organization"}`;
    else about = organization?.name ?? "all participants and MSPs";
    const title = n.type === NotificationType.CERTIFICATE_EXPIRING && n.daysUntilExpiry ? `Certificate expires within ${n.daysUntilExpiry} days` : template.title;
    const subject = oneLine(`[KeyPortal] ${title}: ${about}`).slice(0, MAX_SUBJECT);

    const facts: string[] = [];
    if (organization) facts.push(`Organization:   ${organization.name}`);
    if (certificate) {
      facts.push(`Certificate id: ${certificate.id}`);
      facts.push(`Subject:        ${certificate.subject}`);
      facts.push(`Serial number:  ${certificate.serialNumber}`);
      facts.push(`Valid until:    ${certificate.notAfter.toISOString()}`);
    }
    if (csr) {
      facts.push(`Request id:     ${csr.id}`);
      if (!certificate) facts.push(`Request:        ${csr.subject}`);
      if (csr.rejectionReason) facts.push(`Reason:         ${oneLine(csr.rejectionReason)}`);
    }
    if (kmsCertificate) {
      facts.push(`KMS certificate: ${kmsCertificate.purpose}, serial ${kmsCertificate.serialNumber}, key id ${kmsCertificate.keyId}`);
      facts.push(`Valid until:    ${kmsCertificate.notAfter.toISOString()}`);
    }
    if (delegation) facts.push(`Delegation id:  ${delegation.id} (${delegation.status})`);
    const kind = n.certificateKind ?? certificate?.kind ?? csr?.kind;
    if (kind) facts.push(`Kind:           ${kind}`);
    if (environment) facts.push(`Environment:    ${environment}`);
    if (officer) facts.push(`Officer:        ${officer.name} <${officer.email}>`);
    const commands = nextCommands(n, subjects, this.publicUrl);
    const body = [
      n.message,
      "",
      ...facts,
      "",
      "What to do next:",
      template.next,
      ...(commands.length ? ["", "With the keyportal CLI (KEYPORTAL_URL=" + this.publicUrl + ") or over HTTPS:", ...commands] : []),
      "",
      `KeyPortal: ${this.publicUrl}/graphql`,
      `Notification ${n.id} of ${n.occurredAt.toISOString()} (${n.type}).`,
      "",
      "You receive this as the certificate management contact or a security officer of the organization concerned.",
      "KeyPortal never sends API tokens or private keys by email, and never asks for them.",
      "",
    ]
      .map(escapeUnprintable)
      .join("\n");
    return { subject: escapeUnprintable(subject), body };
  }
}
