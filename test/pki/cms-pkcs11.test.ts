import { describe } from "vitest";
import { available } from "../support/deps.js";
import { Pkcs11KeyStore } from "../../src/pki/keystore/index.js";
import { defineCmsSuite } from "./cms-suite.js";
import { initToken } from "./softhsm.js";

describe.skipIf(!(await available("openssl", "softhsm2")))("PKCS#11 key store on SoftHSM2", () => {
  defineCmsSuite("Pkcs11KeyStore", async (dir) => new Pkcs11KeyStore({ ...initToken(dir), sessions: 2 }));
});
