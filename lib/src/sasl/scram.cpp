// Native SCRAM client (RFC 5802; SHA-256 RFC 7677; SHA-512
// draft-melnikov-scram-sha-512) with channel binding (RFC 5802 6, RFC 5929,
// RFC 9266), on the TLS library's crypto: the calls used here exist in both
// BoringSSL and OpenSSL 3 with compatible signatures. Also the native
// ANONYMOUS (RFC 4505), which needs no crypto at all.
#include <xmpp/sasl.hpp>

#include "detail.hpp"
#include "detail/base64.hpp"
#include "detail/precis.hpp" // is_valid_utf8

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <deque>
#include <mutex>

#include <openssl/crypto.h> // CRYPTO_memcmp, OPENSSL_cleanse (BoringSSL: via mem.h)
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <unicode/ustring.h>
#include <unicode/usprep.h>

namespace xmpp::sasl {

namespace detail {

// --- base64: the library's strict codec (lib/src/detail/base64.hpp), over bytes ---

std::string base64_encode(std::span<const std::uint8_t> data) {
    return xmpp::detail::base64_encode(std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
}

std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view s) {
    auto text = xmpp::detail::base64_decode(s);
    if (!text) return std::nullopt;
    return std::vector<std::uint8_t>(text->begin(), text->end());
}

// --- SASLprep (RFC 4013) ---------------------------------------------------------

std::optional<std::string> saslprep(std::string_view in, bool query, bool force_icu) {
    if (!force_icu && std::all_of(in.begin(), in.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
        // ASCII: no mapping (RFC 4013 2.1: B.1 and non-ASCII spaces are not
        // ASCII), NFKC is the identity, no bidi characters; only the ASCII
        // controls are prohibited (2.3, RFC 3454 C.2.1).
        for (char c : in)
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
        return std::string(in);
    }
    if (in.size() > 4096) return std::nullopt; // far beyond any real credential
    UErrorCode st = U_ZERO_ERROR;
    std::vector<UChar> u16(in.size() + 1);
    int32_t u16_len = 0;
    u_strFromUTF8(u16.data(), static_cast<int32_t>(u16.size()), &u16_len, in.data(),
                  static_cast<int32_t>(in.size()), &st);
    if (U_FAILURE(st)) return std::nullopt; // not UTF-8
    UStringPrepProfile* prof = usprep_openByType(USPREP_RFC4013_SASLPREP, &st);
    if (U_FAILURE(st)) return std::nullopt;
    // NFKC may expand; retry once with the size ICU asks for.
    std::vector<UChar> prepped(static_cast<std::size_t>(u16_len) * 4 + 16);
    const int32_t opts = query ? USPREP_ALLOW_UNASSIGNED : USPREP_DEFAULT;
    int32_t n = usprep_prepare(prof, u16.data(), u16_len, prepped.data(), static_cast<int32_t>(prepped.size()),
                               opts, nullptr, &st);
    if (st == U_BUFFER_OVERFLOW_ERROR) {
        st = U_ZERO_ERROR;
        prepped.resize(static_cast<std::size_t>(n) + 1);
        n = usprep_prepare(prof, u16.data(), u16_len, prepped.data(), static_cast<int32_t>(prepped.size()), opts,
                           nullptr, &st);
    }
    usprep_close(prof);
    if (U_FAILURE(st)) return std::nullopt;
    std::string out(static_cast<std::size_t>(n) * 3 + 1, '\0');
    int32_t out_len = 0;
    u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &out_len, prepped.data(), n, &st);
    if (U_FAILURE(st)) return std::nullopt;
    out.resize(static_cast<std::size_t>(out_len));
    return out;
}

// --- channel binding choice ------------------------------------------------------

std::string choose_binding(const tls_state& tls, bool strict) {
    if (!tls.secure || !tls.binding) return {};
    const bool tls13 = tls.tls_version >= 0x0304;
    auto has_data = [&](std::string_view t) { return !tls.binding(t).empty(); };
    auto advertised = [&](std::string_view t) {
        return std::find(tls.server_binding_types.begin(), tls.server_binding_types.end(), t) !=
               tls.server_binding_types.end();
    };
    // Our preference among what the server advertised (XEP-0440). tls-unique
    // is undefined under TLS 1.3 (RFC 9266 3).
    for (std::string_view t : {"tls-exporter", "tls-server-end-point", "tls-unique"}) {
        if (tls13 && t == "tls-unique") continue;
        if (advertised(t) && has_data(t)) return std::string(t);
    }
    if (tls13) {
        // Servers that offer -PLUS without XEP-0440 may only accept a
        // non-standard tls-unique here (FIELD-NOTES): select() stays away.
        if (!strict && has_data("tls-exporter")) return "tls-exporter"; // RFC 9266 default
        return {};
    }
    // TLS <= 1.2: tls-unique is the default (RFC 5802 6) unless the server
    // listed types and tls-unique is not among them.
    if (strict && !tls.server_binding_types.empty()) return {};
    if (has_data("tls-unique")) return "tls-unique";
    return {};
}

// --- SCRAM's crypto, on the TLS library ------------------------------------------

namespace {

const EVP_MD* md_of(scram_hash h) {
    switch (h) {
    case scram_hash::sha1: return EVP_sha1();
    case scram_hash::sha256: return EVP_sha256();
    case scram_hash::sha512: return EVP_sha512();
    }
    return nullptr;
}

} // namespace

std::optional<scram_hash> scram_hash_of(std::string_view name) {
    if (name.starts_with("SCRAM-")) name.remove_prefix(6);
    if (name == "SHA-1") return scram_hash::sha1;
    if (name == "SHA-256") return scram_hash::sha256;
    if (name == "SHA-512") return scram_hash::sha512;
    return std::nullopt;
}

std::string_view hash_name(scram_hash h) noexcept {
    switch (h) {
    case scram_hash::sha1: return "SHA-1";
    case scram_hash::sha256: return "SHA-256";
    case scram_hash::sha512: return "SHA-512";
    }
    return {};
}

std::size_t hash_size(scram_hash h) noexcept { return static_cast<std::size_t>(EVP_MD_size(md_of(h))); }

bytes hash(scram_hash h, std::span<const std::uint8_t> data) {
    bytes out(EVP_MAX_MD_SIZE);
    unsigned len = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &len, md_of(h), nullptr);
    out.resize(len);
    return out;
}

bytes hmac(scram_hash h, std::span<const std::uint8_t> key, std::string_view data) {
    bytes out(EVP_MAX_MD_SIZE);
    unsigned len = 0;
    HMAC(md_of(h), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
         data.size(), out.data(), &len);
    out.resize(len);
    return out;
}

bool hi(scram_hash h, std::string_view password, std::span<const std::uint8_t> salt, std::uint32_t iterations,
        bytes& out) {
    // PKCS5_PBKDF2_HMAC takes an int count in OpenSSL (unsigned in BoringSSL).
    if (iterations == 0 || iterations > static_cast<std::uint32_t>(INT_MAX)) return false;
    out.assign(hash_size(h), 0);
    return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                             static_cast<int>(salt.size()), static_cast<int>(iterations), md_of(h),
                             static_cast<int>(out.size()), out.data()) == 1;
}

// scram_config::cache_salted: PBKDF2 once per (hash, password, salt,
// count) for the life of the process (RFC 5802 5.1: a client may store the
// salted password). Keyed by a digest, so the password itself is not kept.
bool salted_cached(scram_hash h, std::string_view password, std::span<const std::uint8_t> salt,
                   std::uint32_t iterations, bytes& out) {
    static std::mutex m;
    static std::deque<std::pair<bytes, bytes>> cache; // key digest -> salted password
    std::string key_in;
    key_in += static_cast<char>(h);
    key_in += std::to_string(iterations) + '\0';
    key_in.append(reinterpret_cast<const char*>(salt.data()), salt.size());
    key_in += '\0';
    key_in += password;
    bytes key = hash(scram_hash::sha256, std::span<const std::uint8_t>(
                                             reinterpret_cast<const std::uint8_t*>(key_in.data()), key_in.size()));
    cleanse(key_in.data(), key_in.size());
    {
        std::lock_guard lk(m);
        for (const auto& [k, v] : cache)
            if (equal_ct(k, key)) {
                out = v;
                return true;
            }
    }
    if (!hi(h, password, salt, iterations, out)) return false;
    std::lock_guard lk(m);
    if (cache.size() >= 64) {
        cleanse(cache.front().second.data(), cache.front().second.size());
        cache.pop_front();
    }
    cache.emplace_back(std::move(key), out);
    return true;
}

bool equal_ct(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void cleanse(void* p, std::size_t n) noexcept { OPENSSL_cleanse(p, n); }

bytes random_bytes(std::size_t n) {
    bytes out(n);
    if (n > 0 && RAND_bytes(out.data(), n) != 1) return {};
    return out;
}

std::string random_nonce() {
    const bytes raw = random_bytes(24);
    if (raw.empty()) return {};
    return base64_encode(raw);
}

// --- SCRAM's grammar (RFC 5802 7) ---------------------------------------------------

std::string escape_saslname(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '=') out += "=3D";
        else if (c == ',') out += "=2C";
        else out += c;
    }
    return out;
}

std::optional<std::string> unescape_saslname(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == ',' || c == '\0') return std::nullopt;
        if (c != '=') {
            out += c;
            continue;
        }
        const std::string_view esc = s.substr(i + 1, 2);
        if (esc == "2C") out += ',';
        else if (esc == "3D") out += '=';
        else return std::nullopt;
        i += 2;
    }
    if (out.empty() || !xmpp::detail::is_valid_utf8(out)) return std::nullopt;
    return out;
}

bool is_printable_nonce(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7e && c != ','; });
}

std::optional<std::vector<scram_attribute>> split_attributes(std::string_view msg) {
    std::vector<scram_attribute> out;
    std::size_t pos = 0;
    while (true) {
        const std::size_t comma = msg.find(',', pos);
        const std::string_view part = msg.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
        if (part.size() < 3 || part[1] != '=') return std::nullopt;
        const char n = part[0];
        if (!((n >= 'a' && n <= 'z') || (n >= 'A' && n <= 'Z'))) return std::nullopt;
        if (part.find('\0') != std::string_view::npos || !xmpp::detail::is_valid_utf8(part)) return std::nullopt;
        out.push_back({n, part.substr(2)});
        if (comma == std::string_view::npos) break;
        pos = comma + 1;
    }
    return out;
}

} // namespace detail

namespace {

using detail::base64_decode;
using detail::base64_encode;
using detail::bytes;
using detail::escape_saslname;
using detail::is_printable_nonce;
using detail::scram_hash;
using detail::split_attributes;

// No real server message comes near this; bigger ones are refused unparsed.
constexpr std::size_t max_server_message = 16 * 1024;

error_code bad(errc e) { return make_error_code(e); }

using detail::printable;

class scram_mechanism final : public mechanism {
public:
    scram_mechanism(std::string name, scram_hash md, std::string username, std::string password,
                    std::string gs2_header, std::vector<std::uint8_t> cb_data, std::string cb_type,
                    std::string nonce, std::uint32_t min_i, std::uint32_t max_i, bool cache_salted)
        : name_(std::move(name)), md_(md), username_(std::move(username)), password_(std::move(password)),
          gs2_header_(std::move(gs2_header)), cb_data_(std::move(cb_data)), cb_type_(std::move(cb_type)),
          nonce_(std::move(nonce)), min_i_(min_i), max_i_(max_i), cache_salted_(cache_salted) {}

    ~scram_mechanism() override {
        detail::cleanse(password_.data(), password_.size());
        detail::cleanse(server_signature_.data(), server_signature_.size());
    }

    std::string_view name() const noexcept override { return name_; }
    std::string_view channel_binding() const noexcept override { return cb_type_; }
    bool finished() const noexcept override { return state_ == state::done; }

    std::optional<std::string> initial_response(error_code& ec) override {
        ec = {};
        if (state_ != state::start) return fail(ec, errc::aborted), std::nullopt;
        // RFC 5802 5.1: client-first-message = gs2-header client-first-message-bare
        client_first_bare_ = "n=" + escape_saslname(username_) + ",r=" + nonce_;
        state_ = state::sent_first;
        return gs2_header_ + client_first_bare_;
    }

    std::string respond(std::string_view challenge, error_code& ec) override {
        ec = {};
        switch (state_) {
        case state::sent_first: return client_final(challenge, ec);
        case state::sent_final:
            // The server-final came as a challenge (RFC 6120 6.3.10): verify
            // it now, answer with an empty response, expect an empty success.
            verify_server_final(challenge, ec);
            if (ec) return {};
            state_ = state::verified;
            return {};
        default: fail(ec, errc::bad_server_message); return {};
        }
    }

    void finish(std::string_view success_data, error_code& ec) override {
        ec = {};
        switch (state_) {
        case state::sent_final:
            // The server signature must come with the success: without it
            // the server has not proved it knows the password.
            if (success_data.empty()) return fail(ec, errc::unexpected_success);
            verify_server_final(success_data, ec);
            if (!ec) state_ = state::done;
            return;
        case state::verified:
            // Already verified through a challenge; a repeated verifier must
            // still be right.
            if (!success_data.empty()) {
                verify_server_final(success_data, ec);
                if (ec) return;
            }
            state_ = state::done;
            return;
        case state::failed: return fail(ec, errc::aborted);
        default: return fail(ec, errc::unexpected_success);
        }
    }

private:
    enum class state { start, sent_first, sent_final, verified, done, failed };

    void fail(error_code& ec, errc e) { fail(ec, bad(e)); }
    void fail(error_code& ec, error_code e) {
        ec = e;
        state_ = state::failed;
    }

    bytes hmac(std::span<const std::uint8_t> key, std::string_view data) const { return detail::hmac(md_, key, data); }

    std::string client_final(std::string_view msg, error_code& ec) {
        if (msg.empty() || msg.size() > max_server_message) return fail(ec, errc::bad_server_message), std::string();
        auto attrs = split_attributes(msg);
        if (!attrs) return fail(ec, errc::bad_server_message), std::string();
        // RFC 5802 7: server-first-message = [reserved-mext ","] nonce "," salt
        //   "," iteration-count ["," extensions]. A mandatory extension we do
        //   not know means failure (5.1 "m").
        const auto& a = *attrs;
        if (a.size() < 3 || a[0].name != 'r' || a[1].name != 's' || a[2].name != 'i')
            return fail(ec, errc::bad_server_message), std::string();
        const std::string_view server_nonce = a[0].value;
        if (!is_printable_nonce(server_nonce)) return fail(ec, errc::bad_server_message), std::string();
        // 5.1 "r": the initial part must be exactly the client nonce, and
        // the server appends its own: a nonce the server did not extend
        // would let it replay an exchange it saw before.
        if (server_nonce.size() <= nonce_.size() || server_nonce.substr(0, nonce_.size()) != nonce_)
            return fail(ec, errc::bad_server_nonce), std::string();
        auto salt = base64_decode(a[1].value);
        if (!salt || salt->empty() || salt->size() > 1024) return fail(ec, errc::bad_server_message), std::string();
        // iteration-count = posit-number = %x31-39 *DIGIT
        const std::string_view is = a[2].value;
        if (is.empty() || is[0] < '1' || is[0] > '9' ||
            !std::all_of(is.begin(), is.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return fail(ec, errc::bad_server_message), std::string();
        std::uint64_t iterations = 0;
        for (char c : is) {
            iterations = iterations * 10 + static_cast<std::uint64_t>(c - '0');
            if (iterations > max_i_) return fail(ec, errc::iteration_count_out_of_range), std::string();
        }
        if (iterations < min_i_) return fail(ec, errc::iteration_count_out_of_range), std::string();

        // 5.1 / 3: c= is base64(gs2-header [cbind-data]).
        std::vector<std::uint8_t> cbind_input(gs2_header_.begin(), gs2_header_.end());
        cbind_input.insert(cbind_input.end(), cb_data_.begin(), cb_data_.end());
        const std::string without_proof = "c=" + base64_encode(cbind_input) + ",r=" + std::string(server_nonce);
        const std::string auth_message = client_first_bare_ + "," + std::string(msg) + "," + without_proof;

        // RFC 5802 3: SaltedPassword := Hi(Normalize(password), salt, i); Hi is PBKDF2.
        const std::size_t hl = detail::hash_size(md_);
        bytes salted;
        const bool ok = cache_salted_ ? detail::salted_cached(md_, password_, *salt, static_cast<std::uint32_t>(iterations), salted)
                                      : detail::hi(md_, password_, *salt, static_cast<std::uint32_t>(iterations), salted);
        detail::cleanse(password_.data(), password_.size());
        password_.clear();
        if (!ok) return fail(ec, errc::aborted), std::string();
        auto client_key = hmac(salted, "Client Key");
        auto stored_key = detail::hash(md_, client_key);
        auto client_signature = hmac(stored_key, auth_message);
        bytes proof(hl);
        for (std::size_t k = 0; k < hl; ++k) proof[k] = client_key[k] ^ client_signature[k];
        auto server_key = hmac(salted, "Server Key");
        server_signature_ = hmac(server_key, auth_message);
        for (auto* v : {&salted, &client_key, &stored_key, &client_signature, &server_key})
            detail::cleanse(v->data(), v->size());

        state_ = state::sent_final;
        // client-final-message = client-final-message-without-proof "," proof
        return without_proof + ",p=" + base64_encode(proof);
    }

    void verify_server_final(std::string_view msg, error_code& ec) {
        if (msg.empty() || msg.size() > max_server_message) return fail(ec, errc::bad_server_message);
        auto attrs = split_attributes(msg);
        if (!attrs) {
            // An e= value may hold any character but ',' and '=' (7:
            // server-error-value-ext = value): report it even if it breaks
            // the attribute grammar afterwards.
            if (msg.starts_with("e=")) return fail(ec, detail::make_error_with_text(
                                                      errc::server_error, "SCRAM server error: " + printable(msg.substr(2))));
            return fail(ec, errc::bad_server_message);
        }
        // RFC 5802 7: server-final-message = (server-error / verifier) ["," extensions]
        const auto& first = attrs->front();
        if (first.name == 'e') {
            return fail(ec, detail::make_error_with_text(errc::server_error,
                                                         "SCRAM server error: " + printable(first.value)));
        }
        if (first.name != 'v') return fail(ec, errc::bad_server_message);
        auto v = base64_decode(first.value);
        if (!v || v->empty()) return fail(ec, errc::bad_server_message);
        if (!detail::equal_ct(*v, server_signature_)) return fail(ec, errc::bad_server_signature);
    }

    std::string name_;
    scram_hash md_;
    std::string username_; // SASLprep'd, unescaped
    std::string password_; // SASLprep'd; wiped once used
    std::string gs2_header_;
    std::vector<std::uint8_t> cb_data_;
    std::string cb_type_;
    std::string nonce_;
    std::uint32_t min_i_, max_i_;
    bool cache_salted_;
    std::string client_first_bare_;
    std::vector<std::uint8_t> server_signature_;
    state state_ = state::start;
};

} // namespace

namespace detail {

error_code check_iteration_bounds(std::uint32_t min_iterations, std::uint32_t max_iterations) {
    // Hi()'s count goes to PKCS5_PBKDF2_HMAC, an int in OpenSSL: refuse
    // bounds it cannot take now rather than fail the exchange later.
    if (max_iterations > static_cast<std::uint32_t>(INT_MAX))
        return make_error_with_text(errc::invalid_configuration,
                                    "SCRAM: max_iterations exceeds INT_MAX (PBKDF2's limit)");
    if (min_iterations > max_iterations)
        return make_error_with_text(errc::invalid_configuration, "SCRAM: min_iterations exceeds max_iterations");
    return {};
}

std::unique_ptr<mechanism> make_scram_with_nonce(std::string_view name, const credentials& creds,
                                                 const tls_state& tls, const scram_config& cfg,
                                                 std::string nonce, error_code& ec) {
    ec = {};
    const bool plus = name.ends_with("-PLUS");
    const std::string_view base = plus ? name.substr(0, name.size() - 5) : name;
    const auto md = base.starts_with("SCRAM-") ? detail::scram_hash_of(base) : std::nullopt;
    if (!md) return ec = bad(errc::invalid_mechanism), nullptr;
    if ((ec = check_iteration_bounds(cfg.min_iterations, cfg.max_iterations))) return nullptr;
    if (!is_printable_nonce(nonce)) return ec = bad(errc::aborted), nullptr;

    // RFC 5802 5.1 "n": SASLprep as a query string; failure or an empty
    // result aborts. 2.2 Normalize(password): as a stored string.
    auto user = saslprep(creds.username, true);
    if (!user || user->empty()) return ec = bad(errc::invalid_credentials), nullptr;
    auto pass = saslprep(creds.password, false);
    if (!pass) return ec = bad(errc::invalid_credentials), nullptr;
    // a= has the syntax of n= (5.1); saslname excludes NUL (7: value-safe-char).
    if (creds.authzid.find('\0') != std::string::npos) return ec = bad(errc::invalid_credentials), nullptr;
    if (!creds.authzid.empty() && !saslprep(creds.authzid, true))
        return ec = bad(errc::invalid_credentials), nullptr;

    // RFC 5802 7: gs2-cbind-flag = ("p=" cb-name) / "n" / "y".
    std::string gs2;
    std::string cb_type;
    std::vector<std::uint8_t> cb_data;
    if (plus) {
        cb_type = cfg.binding_type.empty() ? choose_binding(tls, false) : cfg.binding_type;
        // cb-name = 1*(ALPHA / DIGIT / "." / "-") (RFC 5802 7)
        const bool name_ok = !cb_type.empty() && std::all_of(cb_type.begin(), cb_type.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
        });
        if (!tls.secure || !name_ok || !tls.binding) return ec = bad(errc::channel_binding_unavailable), nullptr;
        cb_data = tls.binding(cb_type);
        if (cb_data.empty()) return ec = bad(errc::channel_binding_unavailable), nullptr;
        gs2.append("p=").append(cb_type);
    } else {
        // 6: 'y' = we could bind but think the server cannot.
        const bool y = cfg.server_lacks_plus && !choose_binding(tls, false).empty();
        gs2.push_back(y ? 'y' : 'n');
    }
    gs2 += ',';
    if (!creds.authzid.empty()) {
        gs2 += "a=";
        gs2 += escape_saslname(creds.authzid);
    }
    gs2 += ',';
    return std::make_unique<scram_mechanism>(std::string(name), *md, std::move(*user), std::move(*pass), std::move(gs2),
                                             std::move(cb_data), std::move(cb_type), std::move(nonce),
                                             cfg.min_iterations, cfg.max_iterations, cfg.cache_salted_password);
}

} // namespace detail

std::unique_ptr<mechanism> make_scram(std::string_view name, const credentials& creds, const tls_state& tls,
                                      const scram_config& cfg, error_code& ec) {
    auto nonce = detail::random_nonce();
    if (nonce.empty()) return ec = bad(errc::aborted), nullptr;
    return detail::make_scram_with_nonce(name, creds, tls, cfg, std::move(nonce), ec);
}

std::unique_ptr<mechanism> make_scram(std::string_view name, const credentials& creds, const tls_state& tls,
                                      error_code& ec) {
    return make_scram(name, creds, tls, scram_config{}, ec);
}

// --- ANONYMOUS (RFC 4505) ----------------------------------------------------------

namespace {

// RFC 4505 2: one message from the client, the optional trace; nothing comes
// back but the outcome. The trace is always empty here (RFC 6120 6.4.2: sent
// as "="): it has no meaning to the server and would only describe us.
class anonymous_mechanism final : public mechanism {
public:
    std::string_view name() const noexcept override { return "ANONYMOUS"; }
    bool finished() const noexcept override { return state_ == state::done; }

    std::optional<std::string> initial_response(error_code& ec) override {
        ec = {};
        if (state_ != state::start) return fail(ec, errc::aborted), std::nullopt;
        state_ = state::sent;
        return std::string();
    }

    std::string respond(std::string_view, error_code& ec) override {
        // RFC 4505 defines no challenge; an empty one (a server that did not
        // take the initial response) is no different: the message went out.
        fail(ec, errc::bad_server_message);
        return {};
    }

    void finish(std::string_view success_data, error_code& ec) override {
        ec = {};
        if (state_ == state::failed) return fail(ec, errc::aborted);
        if (state_ != state::sent) return fail(ec, errc::unexpected_success);
        // No additional data is defined for success.
        if (!success_data.empty()) return fail(ec, errc::bad_server_message);
        state_ = state::done;
    }

private:
    enum class state { start, sent, done, failed };

    void fail(error_code& ec, errc e) {
        ec = make_error_code(e);
        state_ = state::failed;
    }

    state state_ = state::start;
};

} // namespace

std::unique_ptr<mechanism> make_anonymous() { return std::make_unique<anonymous_mechanism>(); }

} // namespace xmpp::sasl
