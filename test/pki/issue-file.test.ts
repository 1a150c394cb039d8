import { available } from "../support/deps.js";
import { describe } from "vitest";
import { FileKeyStore } from "../../src/pki/keystore/index.js";
import { defineIssuanceSuite } from "./issuance-suite.js";

describe.skipIf(!(await available("openssl")))("file key store", () => {
  defineIssuanceSuite("FileKeyStore", async (dir) => new FileKeyStore({ dir: `${dir}/keys`, passphrase: "correct horse" }));
});
