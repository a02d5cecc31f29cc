// Internals of the SASL layer shared by its .cpp files and reached by the
// tests (private include directory): base64, SASLprep, channel-binding
// choice, error codes with text, the SCRAM nonce hook, the Cyrus plugin
// filter and its Kerberos module check.
#pragma once

#include <xmpp/sasl.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace xmpp::sasl::detail {

// --- error.cpp ---------------------------------------------------------------

/// An error_code equal to make_error_code(e) whose message() is `text`.
/// Texts are interned for the life of the process (bounded: past 256
/// distinct texts the plain code is returned).
error_code make_error_with_text(errc e, std::string_view text);

/// A peer's text made safe for an error message or a log: printable ASCII
/// (anything else becomes '?'), at most `max` bytes of the input.
std::string printable(std::string_view s, std::size_t max = 128);

// --- scram.cpp ---------------------------------------------------------------

/// RFC 4648 4 base64 with padding.
std::string base64_encode(std::span<const std::uint8_t> data);
inline std::string base64_encode(std::string_view s) {
    return base64_encode(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
}
/// Strict RFC 4648 decoding: the alphabet only, length a multiple of 4,
/// correct padding, zero pad bits (so every input has one meaning).
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view s);

/// SASLprep (RFC 4013). query = true allows unassigned code points (RFC
/// 3454 7: "query" strings; RFC 5802 5.1 for the username); false is a
/// "stored" string (RFC 5802 2.2 for the password). Pure ASCII takes a path
/// without ICU unless force_icu (a test hook: both paths must agree).
/// nullopt when the string is rejected (or not UTF-8).
std::optional<std::string> saslprep(std::string_view in, bool query, bool force_icu = false);

/// The channel-binding type to use for -PLUS, "" if none. strict follows
/// select(): under TLS 1.3 only an advertised type (XEP-0440). Non-strict
/// falls back to the version's default type (tls-exporter / tls-unique).
/// Only types whose data tls.binding() gives are returned.
std::string choose_binding(const tls_state& tls, bool strict);

/// The hash names make_scram() accepts, strongest first, without "-PLUS".
inline constexpr std::string_view scram_names[] = {"SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"};

/// errc::invalid_configuration (with a text saying which) when SCRAM
/// cannot use these bounds: max > INT_MAX (PBKDF2's int count in OpenSSL)
/// or min > max; no error otherwise.
error_code check_iteration_bounds(std::uint32_t min_iterations, std::uint32_t max_iterations);

/// make_scram() with a fixed client nonce (test hook, RFC vectors).
std::unique_ptr<mechanism> make_scram_with_nonce(std::string_view name, const credentials& creds,
                                                 const tls_state& tls, const scram_config& cfg,
                                                 std::string nonce, error_code& ec);

// --- scram.cpp: SCRAM's crypto and grammar, shared by client and server ------
//
// On the TLS library's crypto (BoringSSL or OpenSSL 3); no OpenSSL type
// leaves scram.cpp.

using bytes = std::vector<std::uint8_t>;

/// The hash functions of SCRAM (RFC 5802, RFC 7677, draft-melnikov-scram-sha-512).
enum class scram_hash { sha1, sha256, sha512 };

/// The hash of a mechanism name without "-PLUS" ("SCRAM-SHA-256") or of a
/// bare hash name ("SHA-256"); nullopt for anything else.
std::optional<scram_hash> scram_hash_of(std::string_view name);
/// "SHA-1", "SHA-256", "SHA-512".
std::string_view hash_name(scram_hash h) noexcept;
/// Output size in bytes (20, 32, 64).
std::size_t hash_size(scram_hash h) noexcept;

/// H(data).
bytes hash(scram_hash h, std::span<const std::uint8_t> data);
/// HMAC(key, data) (RFC 2104).
bytes hmac(scram_hash h, std::span<const std::uint8_t> key, std::string_view data);
/// Hi(password, salt, i) = PBKDF2 with HMAC (RFC 5802 2.2); false on a
/// count the library cannot take (0, above INT_MAX).
bool hi(scram_hash h, std::string_view password, std::span<const std::uint8_t> salt, std::uint32_t iterations,
        bytes& out);
/// hi() through the process-wide cache of scram_config::cache_salted_password.
bool salted_cached(scram_hash h, std::string_view password, std::span<const std::uint8_t> salt,
                   std::uint32_t iterations, bytes& out);
/// Constant-time equality (CRYPTO_memcmp); false for different sizes.
bool equal_ct(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept;
/// Wipes memory the compiler may not drop (OPENSSL_cleanse).
void cleanse(void* p, std::size_t n) noexcept;
/// `n` bytes from the TLS library's CSRNG; empty on failure.
bytes random_bytes(std::size_t n);
/// 24 random bytes in base64: 32 printable characters without ','.
std::string random_nonce();

/// "=" and "," in a saslname as "=3D" and "=2C" (RFC 5802 5.1).
std::string escape_saslname(std::string_view s);
/// The inverse; nullopt for '=' followed by anything but "2C" or "3D"
/// (RFC 5802 5.1: the server MUST fail then), for an empty result, NUL or
/// invalid UTF-8 (7: saslname = 1*(value-safe-char / "=2C" / "=3D")).
std::optional<std::string> unescape_saslname(std::string_view s);
/// RFC 5802 7: printable = %x21-2B / %x2D-7E, at least one.
bool is_printable_nonce(std::string_view s) noexcept;

/// One "a=value" attribute of a SCRAM message (RFC 5802 7: attr-val).
struct scram_attribute {
    char name = 0;
    std::string_view value;
};
/// Splits a message into attributes: each part ALPHA "=" value, value =
/// 1*value-char (UTF-8 without NUL; ',' separates). nullopt when a part
/// breaks that.
std::optional<std::vector<scram_attribute>> split_attributes(std::string_view msg);

// --- cyrus.cpp ---------------------------------------------------------------

/// Why the plugin filter rejects a shared object: the first offending
/// DT_NEEDED name found in its dependency closure ("libcrypto.so.3"), or a
/// dependency the search of ld.so(8) would not find ("libfoo.so.1 (not
/// found)": what it would load cannot be judged); "" when it is acceptable;
/// nullopt when `path` is not a readable ELF file of this machine.
/// Dependencies are searched as ld.so does: DT_RPATH, LD_LIBRARY_PATH,
/// DT_RUNPATH, the directories of /etc/ld.so.conf (with its includes), the
/// default directories; files of another ELF class or machine are skipped.
std::optional<std::string> openssl_dependency(const std::string& path);

/// Where MIT krb5 and the GSS-API mechglue find the modules they dlopen() at
/// run time, behind Cyrus's back: krb5 plugins (preauth/spake.so,
/// preauth/pkinit.so, tls/k5tls.so...) and GSS mechanism modules.
struct kerberos_modules {
    /// Searched recursively: <libdir>/krb5/plugins, plugin_base_dir.
    std::vector<std::string> plugin_dirs;
    /// GSS mechglue configuration (/etc/gss/mech, /etc/gss/mech.d/*.conf,
    /// $GSS_MECH_CONFIG): "name oid path ..." lines.
    std::vector<std::string> mech_configs;
    /// Module paths named by krb5.conf ([plugins] module = name:path).
    std::vector<std::string> module_files;
};

/// What this system's krb5 and mechglue would find ($KRB5_CONFIG or
/// /etc/krb5.conf with include/includedir, plugin_base_dir).
kerberos_modules system_kerberos_modules();

/// The first module of `m` whose dependency closure fails
/// openssl_dependency(), as "<path>, which needs <dependency>"; "" when all
/// pass. Files that are not ELF objects are skipped (dlopen() fails on them).
std::string kerberos_openssl_module(const kerberos_modules& m);

/// True when the dependency closure of `path` holds MIT krb5 or a GSS-API
/// library (libkrb5.so*, libgssapi_krb5.so*, libgssapi.so*).
bool uses_kerberos(const std::string& path);

/// Why GSSAPI (and any Cyrus plugin on krb5) is not loaded: "" when it is
/// allowed, i.e. always in the OpenSSL build; in the BoringSSL build
/// kerberos_openssl_module(system_kerberos_modules()) turned into a message
/// naming the module and -Dtls=openssl. Computed once.
const std::string& gssapi_unavailable_reason();

/// True when Cyrus plugins are filtered (BoringSSL build).
bool cyrus_filters_plugins() noexcept;

/// The plugin files the filter saw during Cyrus's initialisation, with
/// whether it let each load.
struct plugin_verdict {
    std::string path;
    bool loaded;
    /// When rejected: the offending dependency ("libcrypto.so.3", "libfoo.so.1
    /// (not found)"), or for a plugin on krb5 "MIT krb5 module <path>, which
    /// needs <dependency>".
    std::string reason;
};
std::vector<plugin_verdict> cyrus_plugin_verdicts();

/// make_cyrus() without the PLAIN pre-checks (TLS, verified peer), so
/// tests can see Cyrus's own refusal (SASL_SEC_NOPLAINTEXT).
std::unique_ptr<mechanism> make_cyrus_unchecked(std::string_view name, const credentials& creds,
                                                std::string_view domain, bool allow_plain,
                                                error_code& ec);

} // namespace xmpp::sasl::detail
