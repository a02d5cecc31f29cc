// libFuzzer target: the native SCRAM client (lib/src/sasl/scram.cpp) fed
// arbitrary server messages.
//
// Invariants checked beyond "no crash, no sanitizer report":
//  - no exception escapes; every failure is an errc of sasl_category();
//  - respond(server-first) succeeds exactly when an independent reading of
//    the RFC 5802 7 grammar (plus the library's documented limits) accepts
//    the message, and the errc names a defect the message really has;
//  - on success the client-final equals a reference computation (RFC 5802 3,
//    straight from the TLS library's HMAC / PBKDF2);
//  - finished() is true only when the server-final (via finish() or as the
//    last challenge, RFC 6120 6.3.10) carries the right verifier in a
//    well-formed message; the right one, built here, always succeeds;
//  - a failed exchange never succeeds afterwards.
//
// Input: two flag bytes, then fields separated by 0xFF (never in UTF-8):
//   flags0: bits 0-1 hash (SHA-1, SHA-256, SHA-512, SHA-256), bit 2 -PLUS,
//           bit 3 scram_config::server_lacks_plus, bit 4 tls_state::secure,
//           bit 5 TLS 1.3 (else 1.2), bits 6-7 scram_config::binding_type
//           ("", tls-exporter, tls-server-end-point, tls-unique)
//   flags1: bits 0-1 credentials, bits 2-3 iteration bounds, bits 4-5 the
//           server-final (0, 3: field as is; 1: the right one; 2: the right
//           one followed by the field), bits 6-7 delivery (0: finish(sf);
//           1: respond(sf), finish(""); 2: respond(sf), finish(sf);
//           3: respond(sf), finish(extra))
//   client nonce 0xFF binding data 0xFF server-first 0xFF server-final 0xFF extra
//
// Built by the `fuzz` option (README "Fuzzing"):
//   build-fuzz/fuzz/fuzz_scram -max_total_time=600 /tmp/fs fuzz/corpus/scram
#include <xmpp/sasl.hpp>

#include "sasl/detail.hpp" // private: lib/src is on the include path
#include "scram_reference.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sasl = xmpp::sasl;
using sasl::errc;
using boost::system::error_code;

namespace {

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            std::fprintf(stderr, "fuzz_scram: check failed, line %d: %s\n", __LINE__, #cond); \
            std::abort();                                                              \
        }                                                                              \
    } while (0)

using bytes = std::vector<std::uint8_t>;
using namespace scram_ref;

// FUZZ_SCRAM_TRACE=1 prints how far each input got (to check the seeds).
void trace(const char* what) {
    static const bool on = std::getenv("FUZZ_SCRAM_TRACE") != nullptr;
    if (on) std::fprintf(stderr, "fuzz_scram: %s\n", what);
}

// --- RFC 5802 7 grammar --------------------------------------------------------------

constexpr std::size_t max_server_message = 16 * 1024; // the library's documented cap


struct server_first_verdict {
    bool syntax = false, nonce = false, iterations = false;
    std::string_view server_nonce;
    bytes salt;
    std::uint32_t i = 0;
    bool ok() const { return !syntax && !nonce && !iterations; }
};

server_first_verdict judge_server_first(std::string_view msg, std::string_view client_nonce,
                                        std::uint32_t min_i, std::uint32_t max_i) {
    server_first_verdict v;
    if (msg.empty() || msg.size() > max_server_message) {
        v.syntax = true;
        return v;
    }
    const auto parts = split_commas(msg);
    for (auto p : parts)
        if (!attr_val(p)) v.syntax = true;
    // [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions];
    // a present m= fails the exchange (RFC 5802 5.1).
    if (parts.size() < 3 || parts[0].substr(0, 2) != "r=" || parts[1].substr(0, 2) != "s=" ||
        parts[2].substr(0, 2) != "i=") {
        v.syntax = true;
        return v;
    }
    v.server_nonce = parts[0].substr(2);
    if (!printable_nonce(v.server_nonce)) v.syntax = true;
    // RFC 5802 5.1: the client nonce, then at least one character of the server's.
    if (!v.server_nonce.starts_with(client_nonce) || v.server_nonce.size() <= client_nonce.size()) v.nonce = true;
    auto salt = ref_b64_decode(parts[1].substr(2));
    if (!salt || salt->empty() || salt->size() > 1024) v.syntax = true; // library limit: 1 KiB salt
    else v.salt = std::move(*salt);
    const std::string_view is = parts[2].substr(2);
    bool digits = !is.empty() && is[0] >= '1' && is[0] <= '9';
    for (char c : is) digits = digits && c >= '0' && c <= '9';
    if (!digits) {
        v.syntax = true;
    } else {
        std::uint64_t n = 0;
        for (char c : is) n = std::min<std::uint64_t>(n * 10 + static_cast<unsigned>(c - '0'), 1ull << 40);
        if (n < min_i || n > max_i) v.iterations = true;
        else v.i = static_cast<std::uint32_t>(n);
    }
    return v;
}

struct server_final_verdict {
    bool syntax = false, error = false, signature = false;
    bool ok() const { return !syntax && !error && !signature; }
};

// server-final-message = (server-error / verifier) ["," extensions]
server_final_verdict judge_server_final(std::string_view msg, const bytes& signature) {
    server_final_verdict v;
    if (msg.empty() || msg.size() > max_server_message) {
        v.syntax = true;
        return v;
    }
    if (msg.starts_with("e=")) {
        v.error = true;
        return v;
    }
    const auto parts = split_commas(msg);
    for (auto p : parts)
        if (!attr_val(p)) v.syntax = true;
    if (!parts[0].starts_with("v=")) {
        v.syntax = true;
        return v;
    }
    auto sig = ref_b64_decode(parts[0].substr(2));
    if (!sig || sig->empty()) v.syntax = true;
    else if (*sig != signature) v.signature = true;
    return v;
}

// --- reference computation (RFC 5802 3) ------------------------------------------


struct reference {
    std::string client_final;
    bytes server_signature;
};

reference compute(const EVP_MD* md, std::string_view password, std::string_view gs2, const bytes& cb_data,
                  std::string_view client_first_bare, std::string_view server_first,
                  const server_first_verdict& sf) {
    bytes cbind(gs2.begin(), gs2.end());
    cbind.insert(cbind.end(), cb_data.begin(), cb_data.end());
    const std::string without_proof = "c=" + ref_b64_encode(cbind) + ",r=" + std::string(sf.server_nonce);
    const std::string auth =
        std::string(client_first_bare) + "," + std::string(server_first) + "," + without_proof;
    const std::size_t hl = static_cast<std::size_t>(EVP_MD_size(md));
    bytes salted(hl);
    CHECK(PKCS5_PBKDF2_HMAC(password.data(), password.size(), sf.salt.data(), sf.salt.size(), sf.i, md, hl,
                            salted.data()) == 1);
    const bytes client_key = hmac(md, salted, "Client Key");
    bytes stored(EVP_MAX_MD_SIZE);
    unsigned n = 0;
    CHECK(EVP_Digest(client_key.data(), client_key.size(), stored.data(), &n, md, nullptr) == 1);
    stored.resize(n);
    const bytes client_sig = hmac(md, stored, auth);
    bytes proof(hl);
    for (std::size_t k = 0; k < hl; ++k) proof[k] = client_key[k] ^ client_sig[k];
    return {without_proof + ",p=" + ref_b64_encode(proof), hmac(md, hmac(md, salted, "Server Key"), auth)};
}

// --- the exchange ----------------------------------------------------------------

struct creds_case {
    sasl::credentials creds;
    std::string_view escaped_user;  // saslname (RFC 5802 5.1)
    std::string_view prepped_pass;  // SASLprep'd (RFC 4013)
    std::string_view gs2_authz;     // "a=..." or ""
};

const creds_case credential_sets[] = {
    {{"user", "pencil", ""}, "user", "pencil", ""},
    {{"us,er=x", "p\xc2\xadw", ""}, "us=2Cer=3Dx", "pw", ""},               // SOFT HYPHEN maps to nothing
    {{"user", "pencil", "adm=in,1"}, "user", "pencil", "a=adm=3Din=2C1"},
    {{"\xc3\xa9l\xc3\xa8ve", "\xe2\x85\xa8", ""}, "\xc3\xa9l\xc3\xa8ve", "IX", ""}, // NFKC
};

struct bounds {
    std::uint32_t min, max;
};
// Small maxima: a fuzzer-chosen i= must not make PBKDF2 dominate the run.
constexpr bounds iteration_bounds[] = {{1, 4096}, {1, 64}, {100, 200}, {4096, 4096}};

void check_errc(const error_code& ec) {
    CHECK(ec.category() == sasl::sasl_category());
    CHECK(ec.value() >= static_cast<int>(errc::aborted) && ec.value() <= static_cast<int>(errc::invalid_credentials));
}

// Whatever comes after a failure, the exchange stays failed.
void check_stays_failed(sasl::mechanism& m, std::string_view right_final) {
    error_code ec;
    m.finish(right_final, ec);
    CHECK(ec);
    check_errc(ec);
    CHECK(!m.finished());
    CHECK(m.respond(right_final, ec).empty());
    CHECK(ec);
    CHECK(!m.finished());
    m.finish("", ec);
    CHECK(ec);
    CHECK(!m.finished());
}

// The errc matches a defect the server-final has.
void check_final_error(const error_code& ec, const server_final_verdict& v) {
    check_errc(ec);
    if (v.error) {
        CHECK(ec == errc::server_error);
        return;
    }
    CHECK((v.syntax && ec == errc::bad_server_message) || (v.signature && ec == errc::bad_server_signature));
}

void run(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return;
    const std::uint8_t f0 = data[0], f1 = data[1];
    std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
    std::string_view field[5];
    for (int k = 0; k < 4; ++k) {
        const std::size_t sep = rest.find('\xff');
        field[k] = rest.substr(0, sep);
        if (sep == std::string_view::npos) {
            rest = {};
            break;
        }
        rest = rest.substr(sep + 1);
    }
    field[4] = rest;
    const std::string_view nonce = field[0];
    const bytes cb_data(field[1].begin(), field[1].end());
    const std::string_view server_first = field[2];
    const std::string_view final_field = field[3];
    const std::string_view extra = field[4];

    static const EVP_MD* const hashes[] = {EVP_sha1(), EVP_sha256(), EVP_sha512(), EVP_sha256()};
    static constexpr std::string_view names[] = {"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", "SCRAM-SHA-256"};
    static constexpr std::string_view binding_types[] = {"", "tls-exporter", "tls-server-end-point", "tls-unique"};
    const EVP_MD* md = hashes[f0 & 3];
    const bool plus = f0 & 4;
    const std::string name = std::string(names[f0 & 3]) + (plus ? "-PLUS" : "");

    sasl::tls_state tls;
    tls.secure = f0 & 16;
    tls.tls_version = (f0 & 32) ? 0x0304 : 0x0303;
    tls.binding = [cb_data](std::string_view) { return cb_data; };
    sasl::scram_config cfg;
    cfg.server_lacks_plus = f0 & 8;
    cfg.binding_type = std::string(binding_types[f0 >> 6]);
    const bounds b = iteration_bounds[(f1 >> 2) & 3];
    cfg.min_iterations = b.min;
    cfg.max_iterations = b.max;
    const creds_case& cc = credential_sets[f1 & 3];
    const int final_mode = (f1 >> 4) & 3;
    const int delivery = f1 >> 6;

    // Creation: nonce first, then channel binding (credentials are valid).
    error_code ec;
    auto m = sasl::detail::make_scram_with_nonce(name, cc.creds, tls, cfg, std::string(nonce), ec);
    if (!printable_nonce(nonce)) {
        CHECK(!m && ec == errc::aborted);
        trace("nonce refused");
        return;
    }
    if (plus && (!tls.secure || cb_data.empty())) {
        CHECK(!m && ec == errc::channel_binding_unavailable);
        trace("no channel binding");
        return;
    }
    CHECK(m && !ec);
    CHECK(m->name() == name);
    CHECK(!m->finished());

    // The GS2 header (RFC 5802 7) we expect, and the binding type in use.
    std::string gs2;
    std::string expected_type;
    if (plus) {
        expected_type = cfg.binding_type.empty() ? (tls.tls_version >= 0x0304 ? "tls-exporter" : "tls-unique")
                                                 : cfg.binding_type;
        gs2 = "p=" + expected_type;
    } else {
        gs2 = cfg.server_lacks_plus && tls.secure && !cb_data.empty() ? "y" : "n";
    }
    gs2 += "," + std::string(cc.gs2_authz) + ",";
    CHECK(m->channel_binding() == expected_type);

    const std::string client_first_bare = "n=" + std::string(cc.escaped_user) + ",r=" + std::string(nonce);
    auto first = m->initial_response(ec);
    CHECK(!ec && first);
    CHECK(*first == gs2 + client_first_bare);

    const auto sfv = judge_server_first(server_first, nonce, b.min, b.max);
    const std::string client_final = m->respond(server_first, ec);
    CHECK(!m->finished());
    if (!sfv.ok()) {
        CHECK(ec);
        CHECK(client_final.empty());
        check_errc(ec);
        CHECK((sfv.syntax && ec == errc::bad_server_message) || (sfv.nonce && ec == errc::bad_server_nonce) ||
              (sfv.iterations && ec == errc::iteration_count_out_of_range));
        trace("server-first refused");
        check_stays_failed(*m, final_field);
        return;
    }
    CHECK(!ec);
    const reference ref = compute(md, cc.prepped_pass, gs2, plus ? cb_data : bytes{}, client_first_bare,
                                  server_first, sfv);
    CHECK(client_final == ref.client_final);
    const std::string right_final = "v=" + ref_b64_encode(ref.server_signature);

    std::string server_final;
    switch (final_mode) {
    case 1: server_final = right_final; break;
    case 2: server_final = right_final + std::string(final_field); break;
    default: server_final = std::string(final_field); break;
    }
    const auto sv = judge_server_final(server_final, ref.server_signature);
    if (final_mode == 1) CHECK(sv.ok());

    if (delivery == 0) {
        m->finish(server_final, ec);
        if (server_final.empty()) {
            CHECK(ec == errc::unexpected_success);
        } else if (sv.ok()) {
            CHECK(!ec);
        } else {
            CHECK(ec);
            check_final_error(ec, sv);
        }
        CHECK(m->finished() == !ec);
        trace(ec ? "server-final refused" : "authenticated");
        if (ec) check_stays_failed(*m, right_final);
        return;
    }

    // The server-final as the last challenge (RFC 6120 6.3.10): an empty
    // response, then <success/> with nothing or the verifier again.
    const std::string response = m->respond(server_final, ec);
    CHECK(response.empty());
    CHECK(!m->finished());
    if (!sv.ok()) {
        CHECK(ec);
        check_final_error(ec, sv);
        trace("server-final challenge refused");
        check_stays_failed(*m, right_final);
        return;
    }
    CHECK(!ec);
    const std::string_view success = delivery == 1 ? std::string_view() : delivery == 2 ? server_final : extra;
    m->finish(success, ec);
    if (success.empty()) {
        CHECK(!ec);
    } else {
        const auto again = judge_server_final(success, ref.server_signature);
        if (again.ok()) {
            CHECK(!ec);
        } else {
            CHECK(ec);
            check_final_error(ec, again);
        }
    }
    CHECK(m->finished() == !ec);
    trace(ec ? "success data refused" : "authenticated via challenge");
    if (ec) check_stays_failed(*m, right_final);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        run(data, size);
    } catch (...) {
        std::fprintf(stderr, "fuzz_scram: an exception escaped\n");
        std::abort();
    }
    return 0;
}
