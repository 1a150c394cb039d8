import { available } from "../support/deps.js";
import { describe } from "vitest";
import { Pkcs11KeyStore } from "../../src/pki/keystore/index.js";
import { defineIssuanceSuite } from "./issuance-suite.js";
import { initToken } from "./softhsm.js";

describe.skipIf(!(await available("openssl", "softhsm2")))("PKCS#11 key store on SoftHSM2", () => {
  defineIssuanceSuite("Pkcs11KeyStore", async (dir) => new Pkcs11KeyStore({ ...initToken(dir), sessions: 2 }));
});
