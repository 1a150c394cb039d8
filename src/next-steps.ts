/**
 * The commands KeyPortal tells people to run next, shared by the CLI's output
 * and the notification emails so that both always say the same thing.
 */

/** A safe local file name from a certificate's common name ("Acme Client" -> "acme-client"). */
export function certificateFileStem(commonName: string, fallback = "certificate"): string {
  const stem = commonName
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 48);
  return stem || fallback;
}

/** `keyportal download ...` for a certificate, writing <common name>.pem. Ids and the stem need no shell quoting. */
export function downloadCommand(certificate: { id: string; commonName?: string | null }): string {
  return `keyportal download --certificate ${certificate.id} --format pem --out ${certificateFileStem(certificate.commonName ?? "")}.pem`;
}
