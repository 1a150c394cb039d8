/** The key stores: the port and its adapters. */
export * from "./port.js";
export { FileKeyStore, nodeCrypto, type FileKeyStoreOptions } from "./file-keystore.js";
export { Pkcs11KeyStore, type Pkcs11KeyStoreOptions } from "./pkcs11-keystore.js";
