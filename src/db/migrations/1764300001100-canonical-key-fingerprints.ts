import type { MigrationInterface, QueryRunner } from "typeorm";
import { certificateSpki, requestSpki, spkiFingerprint } from "../../pki/key-identity.js";
import { sha256Hex } from "../../pki/spki.js";

/**
 * publicKeyFingerprint becomes the SHA-256 of the key's canonical SPKI
 * (pki/key-identity.ts) instead of the SPKI bytes as sent, in every table
 * that keeps one: certificates (from the certificate's own SPKI),
 * certificate_signing_requests (from the stored request) and blocked_keys
 * (from the blocked certificate). Keys stored in a non-DER form are read
 * leniently, so a key that got in under another encoding gets its true
 * identity now.
 *
 * Two consequences of one key getting one fingerprint:
 * - blocked_keys rows of the same key (blocked twice under two encodings)
 *   become one row, the earliest;
 * - pending requests for the same key (unique while pending) keep only the
 *   earliest submitted pending; the others are rejected with a reason that
 *   says why.
 * Other pending requests whose key turns out to be certified or blocked
 * are refused when an operator tries to sign them.
 *
 * kms_certificates.keyId is not rewritten: it is the hash of the SPKI that
 * WebCrypto exports (already canonical), and participants quote it.
 */
export class CanonicalKeyFingerprints1764300001100 implements MigrationInterface {
  name = "CanonicalKeyFingerprints1764300001100";

  up(q: QueryRunner): Promise<void> {
    return rewrite(q, spkiFingerprint);
  }

  /** Back to the hash of the bytes as stored (merged block entries and rejections stay). */
  down(q: QueryRunner): Promise<void> {
    return rewrite(q, sha256Hex);
  }
}

const PAGE = 500;
const DUPLICATE_PENDING = (keptId: string) =>
  `Rejected on upgrade: this request carries the same public key as pending request ${keptId}, in another encoding (KEY_REUSE). Submit a request with a new key pair.`;

type Row = Record<string, string | null>;

function fromBase64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "base64"));
}

function pemDer(pem: string): Uint8Array {
  return fromBase64(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""));
}

/** A stored key's fingerprint under `fingerprint`, or null (keep the old value) when the stored bytes cannot be read. */
function safely(read: () => Uint8Array, fingerprint: (spki: Uint8Array) => string): string | null {
  try {
    return fingerprint(read());
  } catch {
    return null;
  }
}

async function rewrite(q: QueryRunner, fingerprint: (spki: Uint8Array) => string): Promise<void> {
  const postgres = q.connection.driver.options.type === "postgres";
  const p = (i: number) => (postgres ? `$${i}` : "?");
  /** Every row of a table in id order, a page at a time. */
  async function* rows(table: string, columns: string[]): AsyncGenerator<Row> {
    let after = "";
    for (;;) {
      const page = (await q.query(
        `SELECT ${columns.map((c) => `"${c}"`).join(", ")} FROM ${table} WHERE "id" > ${p(1)} ORDER BY "id" LIMIT ${PAGE}`,
        [after],
      )) as Row[];
      yield* page;
      if (page.length < PAGE) return;
      after = page[page.length - 1]!.id!;
    }
  }

  const certificateKeys = new Map<string, string>();
  for await (const row of rows("certificates", ["id", "derBase64", "publicKeyFingerprint"])) {
    const fp = safely(() => certificateSpki(fromBase64(row.derBase64!)), fingerprint) ?? row.publicKeyFingerprint!;
    certificateKeys.set(row.id!, fp);
    if (fp !== row.publicKeyFingerprint) {
      await q.query(`UPDATE certificates SET "publicKeyFingerprint" = ${p(1)} WHERE "id" = ${p(2)}`, [fp, row.id]);
    }
  }

  // Blocked keys: one row per key, the earliest block.
  const blocked = (await q.query(`SELECT "publicKeyFingerprint", "certificateId", "blockedAt" FROM blocked_keys ORDER BY "blockedAt", "publicKeyFingerprint"`)) as Row[];
  const keptBlock = new Map<string, string>();
  const blockUpdates: Array<[string, string]> = [];
  for (const row of blocked) {
    const old = row.publicKeyFingerprint!;
    const fp = (row.certificateId && certificateKeys.get(row.certificateId)) || old;
    if (keptBlock.has(fp)) {
      await q.query(`DELETE FROM blocked_keys WHERE "publicKeyFingerprint" = ${p(1)}`, [old]);
      continue;
    }
    keptBlock.set(fp, old);
    if (fp !== old) blockUpdates.push([fp, old]);
  }
  for (const [fp, old] of blockUpdates) {
    await q.query(`UPDATE blocked_keys SET "publicKeyFingerprint" = ${p(1)} WHERE "publicKeyFingerprint" = ${p(2)}`, [fp, old]);
  }

  // Requests: pending ones first, in submission order, so that of two pending requests for one key the earlier stays pending.
  const pending = (await q.query(
    `SELECT "id", "pem", "publicKeyFingerprint" FROM certificate_signing_requests WHERE "status" = 'PENDING' ORDER BY "submittedAt", "id"`,
  )) as Row[];
  const pendingByKey = new Map<string, string>();
  const now = new Date().toISOString();
  for (const row of pending) {
    const fp = safely(() => requestSpki(pemDer(row.pem!)), fingerprint) ?? row.publicKeyFingerprint!;
    const kept = pendingByKey.get(fp);
    if (kept) {
      await q.query(
        `UPDATE certificate_signing_requests SET "status" = 'REJECTED', "decidedAt" = ${p(1)}, "rejectionReason" = ${p(2)} WHERE "id" = ${p(3)}`,
        [now, DUPLICATE_PENDING(kept), row.id],
      );
    } else {
      pendingByKey.set(fp, row.id!);
    }
  }
  // Rejected duplicates left the pending index above; a survivor's new value can only equal the old value of a request for the same key.
  for (const [fp, id] of pendingByKey) {
    await q.query(`UPDATE certificate_signing_requests SET "publicKeyFingerprint" = ${p(1)} WHERE "id" = ${p(2)}`, [fp, id]);
  }
  for await (const row of rows("certificate_signing_requests", ["id", "pem", "publicKeyFingerprint", "status"])) {
    if (row.status === "PENDING") continue;
    const fp = safely(() => requestSpki(pemDer(row.pem!)), fingerprint) ?? row.publicKeyFingerprint!;
    if (fp !== row.publicKeyFingerprint) {
      await q.query(`UPDATE certificate_signing_requests SET "publicKeyFingerprint" = ${p(1)} WHERE "id" = ${p(2)}`, [fp, row.id]);
    }
  }
}
