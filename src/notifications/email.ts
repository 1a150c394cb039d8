import { randomUUID } from "node:crypto";
import { type EntityManager, In } from "typeorm";
import { Certificate } from "../certificates/certificate.entity.js";
import type { Clock } from "../kernel/clock.js";
import { CertificateSigningRequest } from "../csrs/csr.entity.js";
import { Delegation } from "../delegations/delegation.entity.js";
import { findByIds, inListChunks, insertRows, MAX_IN_LIST } from "../db/data-source.js";
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

/** A notification as its email describes it: everything but its row's id and position. */
export type NotificationDraft = Omit<Notification, "id" | "position">;

/** The ids of what a notification is about. */
export type SubjectIds = Pick<Notification, "organizationId"> &
  Partial<Pick<Notification, "certificateId" | "csrId" | "officerId" | "delegationId" | "kmsCertificateId">>;

/** The fields of a notification that decide its recipients. */
export type Addressing = Pick<Notification, "organizationId"> &
  Partial<Pick<Notification, "secondOrganizationId" | "audience" | "certificateKind" | "environment">>;

/**
 * The exact commands and URLs for the next step, by type: what the officer
 * types (keyportal CLI) or fetches (REST). Ids only; nothing secret.
 */
function nextCommands(n: Pick<Notification, "type">, s: Subjects, url: string): string[] {
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

  /** Writes the deliveries of many notifications, a row per recipient, in as few multi-row INSERTs as the parameter limits allow. */
  async writeMany(em: EntityManager, mails: ReadonlyArray<{ notificationId: number; recipients: readonly string[]; subject: string; body: string }>): Promise<void> {
    const now = this.clock.now();
    const rows = mails.flatMap(({ notificationId, recipients, subject, body }) =>
      recipients.map((recipient) =>
        em.create(EmailDelivery, {
          id: randomUUID(),
          notificationId,
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
      ),
    );
    await insertRows(em, EmailDelivery, rows);
  }

  /**
   * What each of `notifications` is about, one IN-list read per kind of
   * subject for all of them (none for a kind `known` holds; a subject given
   * there as null is known to be none): a few statements whatever their number.
   */
  async subjectsOfMany(em: EntityManager, notifications: readonly SubjectIds[], known: Partial<Subjects> = {}): Promise<Subjects[]> {
    // One after the other: a transaction is one connection, and pg refuses overlapping queries on it.
    const load = async <E extends { id: string }>(key: keyof Subjects, entity: new () => E, idOf: (n: SubjectIds) => string | null | undefined) => {
      const byId = new Map<string, E>();
      if (known[key] !== undefined) return { known: (known[key] ?? null) as E | null, byId };
      const ids = [...new Set(notifications.map(idOf).filter((id): id is string => !!id))];
      for (const row of await findByIds(em, entity, ids)) byId.set(row.id, row);
      return { known: undefined, byId };
    };
    const organizations = await load("organization", Organization, (n) => n.organizationId);
    const certificates = await load("certificate", Certificate, (n) => n.certificateId);
    const csrs = await load("csr", CertificateSigningRequest, (n) => n.csrId);
    const officers = await load("officer", Officer, (n) => n.officerId);
    const delegations = await load("delegation", Delegation, (n) => n.delegationId);
    const kmsCertificates = await load("kmsCertificate", KmsCertificate, (n) => n.kmsCertificateId);
    const pick = <E>(loaded: { known: E | null | undefined; byId: Map<string, E> }, id: string | null | undefined): E | null =>
      loaded.known !== undefined ? loaded.known : id ? (loaded.byId.get(id) ?? null) : null;
    return notifications.map((n) => ({
      organization: pick(organizations, n.organizationId),
      certificate: pick(certificates, n.certificateId),
      csr: pick(csrs, n.csrId),
      officer: pick(officers, n.officerId),
      delegation: pick(delegations, n.delegationId),
      kmsCertificate: pick(kmsCertificates, n.kmsCertificateId),
    }));
  }

  async recipients(em: EntityManager, n: Addressing): Promise<string[]> {
    return (await this.recipientsOfMany(em, [n]))[0]!;
  }

  /**
   * The recipients of each of `notifications`, read for all of them at once:
   * the participants and MSPs (if an audience asks for them), the active
   * delegations of the organizations concerned, their organizations and
   * their active officers, each in one IN-list read (per MAX_IN_LIST ids).
   */
  async recipientsOfMany(em: EntityManager, notifications: readonly Addressing[]): Promise<string[][]> {
    let everyone: string[] = [];
    if (notifications.some((n) => n.audience === NotificationAudience.PARTICIPANTS_AND_MSPS)) {
      const all = await em.find(Organization, { where: { kind: In([OrganizationKind.PARTICIPANT, OrganizationKind.MSP]) }, select: { id: true } });
      everyone = all.map((org) => org.id);
    }
    const delegating = [...new Set(notifications.filter((n) => n.organizationId && n.certificateKind && n.environment).map((n) => n.organizationId!))];
    const delegations: Delegation[] = [];
    for (const part of inListChunks(delegating)) {
      delegations.push(...(await em.find(Delegation, { where: { participantId: In(part), status: DelegationStatus.ACTIVE } })));
    }
    const concerned = notifications.map((n) => {
      const organizationIds = new Set<string>();
      if (n.organizationId) organizationIds.add(n.organizationId);
      if (n.secondOrganizationId) organizationIds.add(n.secondOrganizationId);
      if (n.audience === NotificationAudience.PARTICIPANTS_AND_MSPS) for (const id of everyone) organizationIds.add(id);
      if (n.organizationId && n.certificateKind && n.environment) {
        for (const d of delegations) {
          if (d.participantId === n.organizationId && d.environment === n.environment && (d.kinds as string[]).includes(n.certificateKind)) organizationIds.add(d.mspId);
        }
      }
      return organizationIds;
    });
    const ids = [...new Set(concerned.flatMap((set) => [...set]))];
    const organizations = await findByIds(em, Organization, ids);
    const officers: Officer[] = [];
    for (const part of inListChunks(ids)) {
      officers.push(...(await em.find(Officer, { where: { organizationId: In(part), status: OfficerStatus.ACTIVE }, order: { createdAt: "ASC" } })));
    }
    // Across IN-list chunks too, officers in the order they were created (a stable sort keeps the database's order of ties).
    if (ids.length > MAX_IN_LIST) officers.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    return concerned.map((organizationIds) => {
      if (organizationIds.size === 0) return [];
      const seen = new Map<string, string>();
      const addresses = [
        ...organizations.filter((o) => organizationIds.has(o.id)).map((o) => o.contactEmail),
        ...officers.filter((o) => organizationIds.has(o.organizationId)).map((o) => o.email),
      ];
      for (const address of addresses) {
        const key = address.toLowerCase();
        if (!seen.has(key)) seen.set(key, address);
      }
      return [...seen.values()];
    });
  }

  /**
   * The email of a notification not yet inserted: its subject, and its body
   * but for the line that names the row's id (known at insert), so a batch
   * composes its emails before the transaction that writes them.
   */
  draft(n: NotificationDraft, subjects: Subjects): { subject: string; body: (notificationId: number) => string } {
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
    const before = [
      n.message,
      "",
      ...facts,
      "",
      "What to do next:",
      template.next,
      ...(commands.length ? ["", "With the keyportal CLI (KEYPORTAL_URL=" + this.publicUrl + ") or over HTTPS:", ...commands] : []),
      "",
      `KeyPortal: ${this.publicUrl}/graphql`,
    ]
      .map(escapeUnprintable)
      .join("\n");
    const after = [
      "",
      "You receive this as the certificate management contact or a security officer of the organization concerned.",
      "KeyPortal never sends API tokens or private keys by email, and never asks for them.",
      "",
    ]
      .map(escapeUnprintable)
      .join("\n");
    const occurredAt = n.occurredAt.toISOString();
    return {
      subject: escapeUnprintable(subject),
      body: (notificationId) => `${before}\n${escapeUnprintable(`Notification ${notificationId} of ${occurredAt} (${n.type}).`)}\n${after}`,
    };
  }
}
