import { Foundation1764300000000 } from "./1764300000000-foundation.js";
import { KeyExchange1764300000100 } from "./1764300000100-key-exchange.js";
import { Notifications1764300000200 } from "./1764300000200-notifications.js";
import { Revocation1764300000300 } from "./1764300000300-revocation.js";
import { KmsCertificates1764300000400 } from "./1764300000400-kms-certificates.js";
import { Identity1764300001000 } from "./1764300001000-identity.js";
import { CanonicalKeyFingerprints1764300001100 } from "./1764300001100-canonical-key-fingerprints.js";
import { CsrIgnoredExtensions1764300001200 } from "./1764300001200-csr-ignored-extensions.js";
import { RootCrls1764300001201 } from "./1764300001201-root-crls.js";
import { ReadPath1764300001500 } from "./1764300001500-read-path.js";
import { IdempotencyKeys1764300001700 } from "./1764300001700-idempotency-keys.js";
import { Sequencer1764300001900 } from "./1764300001900-sequencer.js";
import { AuditHeadTrigger1764300002000 } from "./1764300002000-audit-head-trigger.js";

/** In order. Each feature adds its own migration here; never edit one that has shipped. */
export const MIGRATIONS = [
  Foundation1764300000000,
  KeyExchange1764300000100,
  Notifications1764300000200,
  Revocation1764300000300,
  KmsCertificates1764300000400,
  Identity1764300001000,
  CanonicalKeyFingerprints1764300001100,
  CsrIgnoredExtensions1764300001200,
  RootCrls1764300001201,
  ReadPath1764300001500,
  IdempotencyKeys1764300001700,
  Sequencer1764300001900,
  AuditHeadTrigger1764300002000,
];
