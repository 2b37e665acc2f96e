#include "http/system_cas.hpp"

#include <dirent.h>

#include <cstdlib>
#include <memory>
#include <openssl/err.h>
#include <openssl/x509.h>

namespace mistral_proxy::http {

namespace {

// A name as `openssl rehash` writes it: eight hex digits, a dot, a digit run.
bool is_hashed_name(const char* name) {
    for (int i = 0; i < 8; ++i) {
        const char c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    if (name[8] != '.' || name[9] < '0' || name[9] > '9') {
        return false;
    }
    for (const char* p = name + 10; *p != '\0'; ++p) {
        if (*p < '0' || *p > '9') {
            return false;
        }
    }
    return true;
}

bool has_hashed_names(const std::string& directory) {
    const std::unique_ptr<DIR, int (*)(DIR*)> listing(opendir(directory.c_str()), closedir);
    if (!listing) {
        return false;
    }
    while (const dirent* entry = readdir(listing.get())) {
        if (is_hashed_name(entry->d_name)) {
            return true;
        }
    }
    return false;
}

bool is_set(const char* variable) {
    const char* value = std::getenv(variable);
    return value != nullptr && value[0] != '\0';
}

}  // namespace

bool load_system_cas(SSL_CTX* context, const std::string& directory, const std::string& bundle,
                     system_cas_source& source) {
    if (is_set(X509_get_default_cert_file_env()) || is_set(X509_get_default_cert_dir_env())) {
        source = system_cas_source::environment;
        return SSL_CTX_set_default_verify_paths(context) == 1;
    }
    if (has_hashed_names(directory)) {
        source = system_cas_source::directory;
        return SSL_CTX_load_verify_dir(context, directory.c_str()) == 1;
    }
    source = system_cas_source::bundle;
    // As OpenSSL's default does: the bundle, and the directory if it is there.
    // A missing one is no error (OpenSSL's default clears it too), as long as
    // one of the two loads.
    const bool file = SSL_CTX_load_verify_file(context, bundle.c_str()) == 1;
    const bool dir = SSL_CTX_load_verify_dir(context, directory.c_str()) == 1;
    if (file || dir) {
        ERR_clear_error();
        return true;
    }
    return false;
}

bool load_system_cas(SSL_CTX* context, system_cas_source& source) {
    return load_system_cas(context, X509_get_default_cert_dir(), X509_get_default_cert_file(), source);
}

}  // namespace mistral_proxy::http
