import { issueCertificate, nameDer, newSerialHex } from "../../src/pki/issue.js";
import type { CertificateAuthority } from "../../src/pki/ca.js";
import { certificateToPem } from "../../src/pki/bundle.js";
import { generateKey, openssl, pemBody, writeFile } from "../pki/helpers.js";

const DAY = 86_400_000;

/** A TLS server certificate for `openssl s_server` on 127.0.0.1, issued by the given CA. Returns file paths. */
export async function serverCertificate(dir: string, ca: CertificateAuthority, now: Date): Promise<{ cert: string; key: string }> {
  const key = generateKey(dir, "p256");
  const spki = pemBody(openssl(["pkey", "-in", key, "-pubout"]));
  const der = await issueCertificate({
    subject: nameDer([
      ["O", "KeyPortal Test"],
      ["CN", "localhost"],
    ]),
    spki: new Uint8Array(spki),
    serialHex: newSerialHex(),
    notBefore: now,
    notAfter: new Date(now.getTime() + 30 * DAY),
    keyUsage: ["digitalSignature"],
    extendedKeyUsage: ["serverAuth"],
    subjectAltNames: [
      { type: "dns", value: "localhost" },
      { type: "ip", value: "127.0.0.1" },
    ],
    issuer: ca.issuer,
  });
  return { cert: writeFile(dir, `server-${newSerialHex().slice(0, 8)}.pem`, certificateToPem(der)), key };
}
