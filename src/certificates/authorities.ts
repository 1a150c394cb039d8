import path from "node:path";
import type { Clock } from "../kernel/clock.js";
import type { Database } from "../db/data-source.js";
import { Environment } from "../kernel/domain.js";
import { type CaKeyAlgorithm, type CaMaterialStore, type CertificateAuthority, loadOrCreateAuthority } from "../pki/ca.js";
import { FileKeyStore, type KeyStore, Pkcs11KeyStore } from "../pki/keystore/index.js";

/**
 * CA certificates live in the database (app_state), so every instance on one
 * database agrees on them; the keys stay in the key store (files or PKCS#11).
 */
export class DatabaseCaMaterialStore implements CaMaterialStore {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  private key(name: string): string {
    return `ca:${name}`;
  }

  async get(name: string): Promise<string | null> {
    const rows: Array<{ value: string }> = await this.db.manager
      .createQueryBuilder()
      .select("s.value", "value")
      .from("app_state", "s")
      .where("s.key = :key", { key: this.key(name) })
      .getRawMany();
    return rows[0]?.value ?? null;
  }

  async putIfAbsent(name: string, pem: string): Promise<string> {
    await this.db.transaction(async ({ em }) => {
      await em
        .createQueryBuilder()
        .insert()
        .into("app_state")
        .values({ key: this.key(name), value: pem, updatedAt: this.clock.now().toISOString() })
        .orIgnore()
        .execute();
    });
    const stored = await this.get(name);
    if (stored === null) throw new Error(`could not store CA material ${name}`);
    return stored;
  }
}

export interface KeyStoreConfig {
  dataDir: string;
  caPassphrase?: string;
  pkcs11?: { library: string; tokenLabel: string; pin: string };
}

export function createKeyStore(config: KeyStoreConfig): KeyStore {
  if (config.pkcs11) return new Pkcs11KeyStore(config.pkcs11);
  return new FileKeyStore({ dir: path.join(config.dataDir, "keys"), passphrase: config.caPassphrase });
}

/** Both environments' CA hierarchies, created on first start and loaded afterwards. */
export class Authorities {
  private constructor(private readonly byEnvironment: Map<Environment, CertificateAuthority>) {}

  static async load(opts: {
    keyStore: KeyStore;
    material: CaMaterialStore;
    clock: Clock;
    keyAlgorithm: CaKeyAlgorithm;
    publicUrl: string;
  }): Promise<Authorities> {
    const map = new Map<Environment, CertificateAuthority>();
    for (const environment of [Environment.MTF, Environment.PRODUCTION]) {
      map.set(
        environment,
        await loadOrCreateAuthority({
          environment,
          keyStore: opts.keyStore,
          material: opts.material,
          now: opts.clock.now(),
          keyAlgorithm: opts.keyAlgorithm,
          organizationName: "KeyPortal",
          crlBaseUrl: `${opts.publicUrl}/crl`,
        }),
      );
    }
    return new Authorities(map);
  }

  of(environment: Environment): CertificateAuthority {
    const ca = this.byEnvironment.get(environment);
    if (!ca) throw new Error(`no CA for ${environment}`);
    return ca;
  }
}
