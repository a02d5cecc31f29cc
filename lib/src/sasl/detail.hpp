// Internals of the SASL layer shared by its .cpp files and reached by the
// tests (private include directory): base64, SASLprep, channel-binding
// choice, error codes with text, the SCRAM nonce hook, the Cyrus plugin
// filter.
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

/// make_scram() with a fixed client nonce (test hook, RFC vectors).
std::unique_ptr<mechanism> make_scram_with_nonce(std::string_view name, const credentials& creds,
                                                 const tls_state& tls, const scram_config& cfg,
                                                 std::string nonce, error_code& ec);

// --- cyrus.cpp ---------------------------------------------------------------

/// Why the plugin filter rejects a shared object: the first offending
/// DT_NEEDED name found in its dependency closure ("libcrypto.so.3"), ""
/// when it is acceptable; nullopt when `path` is not a readable ELF file.
std::optional<std::string> openssl_dependency(const std::string& path);

/// True when Cyrus plugins are filtered (BoringSSL build).
bool cyrus_filters_plugins() noexcept;

/// The plugin files the filter saw during Cyrus's initialisation, with
/// whether it let each load.
struct plugin_verdict {
    std::string path;
    bool loaded;
    std::string reason; ///< the offending dependency when rejected
};
std::vector<plugin_verdict> cyrus_plugin_verdicts();

/// make_cyrus() without the plain_without_tls pre-check, so tests can see
/// Cyrus's own refusal (SASL_SEC_NOPLAINTEXT).
std::unique_ptr<mechanism> make_cyrus_unchecked(std::string_view name, const credentials& creds,
                                                std::string_view domain, bool allow_plain,
                                                error_code& ec);

} // namespace xmpp::sasl::detail
