/**
 * The KMS's own use of its keys (messaging side; not exposed over GraphQL):
 * CMS signing with the current MESSAGE_SIGNING key and decryption with any
 * MESSAGE_ENCRYPTION key in the valid set, all inside the key store.
 */
import type { Authorities } from "../certificates/authorities.js";
import type { Clock } from "../kernel/clock.js";
import { Environment, KmsCertificatePurpose } from "../kernel/domain.js";
import { badInput, DomainError, preconditionFailed } from "../kernel/errors.js";
import { decryptCms, signCms } from "../pki/cms.js";
import type { KmsCertificates } from "./kms-certificates.js";

export class KmsMessaging {
  constructor(
    private readonly clock: Clock,
    private readonly certs: KmsCertificates,
    private readonly authorities: Authorities,
  ) {}

  /** CMS SignedData (attached, SHA-256) over `data`, signed in the key store with the current MESSAGE_SIGNING key. */
  async signMessage(environment: Environment, data: Uint8Array): Promise<Uint8Array> {
    const certificate = await this.certs.current(environment, KmsCertificatePurpose.MESSAGE_SIGNING);
    const now = this.clock.now();
    if (certificate.notAfter.getTime() <= now.getTime()) {
      throw preconditionFailed("KMS_CERTIFICATE_EXPIRED", `the current ${environment} message signing certificate has expired; rotate it`);
    }
    const keys = await this.certs.keysOf(certificate);
    const issuing = new Uint8Array(this.authorities.of(environment).issuing.rawData);
    return signCms(data, this.certs.der(certificate), keys, this.certs.keyStore, { signingTime: now, certificates: [issuing] });
  }

  /**
   * Decrypts CMS EnvelopedData addressed to one of the environment's
   * MESSAGE_ENCRYPTION certificates in the valid set: the current one first,
   * then those still overlapping. Retired and expired certificates are not
   * tried: a sender who still uses them must fetch the current one.
   */
  async decryptMessage(environment: Environment, envelopedDer: Uint8Array): Promise<Uint8Array> {
    const candidates = await this.certs.validSet(environment, KmsCertificatePurpose.MESSAGE_ENCRYPTION, this.clock.now());
    for (const certificate of candidates) {
      try {
        return await decryptCms(envelopedDer, this.certs.der(certificate), await this.certs.keysOf(certificate), this.certs.keyStore.crypto);
      } catch (error) {
        if (error instanceof DomainError && error.reason === "CMS_RECIPIENT_NOT_FOUND") continue;
        throw error;
      }
    }
    throw badInput("CMS_RECIPIENT_NOT_FOUND", `The message is not encrypted to a current or overlapping KMS ${environment} encryption certificate.`);
  }
}
