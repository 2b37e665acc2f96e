#pragma once
// Where an upstream without a `ca_file` finds the CAs it trusts: the
// system's, as OpenSSL's defaults name them, loaded the cheap way.
#include <openssl/ssl.h>

#include <string>

namespace mistral_proxy::http {

// How the system's CAs were loaded into a context (for the start log and tests).
enum class system_cas_source {
    environment,  // SSL_CERT_FILE or SSL_CERT_DIR is set: OpenSSL's defaults, which honour them
    directory,    // the hashed directory only, each CA read when a chain needs it
    bundle,       // the directory has no hashed names: the bundle file and the directory
};

// Loads the system's CAs into `context`. OpenSSL's default (the bundle file
// and the directory) parses the whole bundle at start: about 140 CAs, 0.9 MB
// of heap that a proxy talking to one or two hosts never reads. The hashed
// directory (`<subject hash>.0` names, what update-ca-certificates and
// `openssl rehash` write) holds the same CAs and is read per issuer when a
// certificate is verified, so it is used alone when it has such names.
// `directory` and `bundle` are OpenSSL's default paths
// (X509_get_default_cert_dir and _file); tests pass their own.
// Returns false when nothing could be loaded (OpenSSL's error queue says why).
bool load_system_cas(SSL_CTX* context, const std::string& directory, const std::string& bundle,
                     system_cas_source& source);

// The same with OpenSSL's default paths.
bool load_system_cas(SSL_CTX* context, system_cas_source& source);

}  // namespace mistral_proxy::http
