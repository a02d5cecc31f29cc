// libFuzzer target: the native SCRAM server (lib/src/sasl/server.cpp) fed
// arbitrary client messages.
//
// Invariants checked beyond "no crash, no sanitizer report":
//  - no exception escapes; every failure is a <failure/> condition of RFC
//    6120 6.5 with a text, and not-authorized only where the client's
//    credentials or binding (never its syntax) are at fault;
//  - start(client-first) goes on exactly when an independent reading of the
//    RFC 5802 7 grammar and the GS2 flag rules of section 6 accepts it;
//  - the server-first carries the client nonce, the fixed server nonce, and
//    the account's salt and count, or for an unknown user the fake salt and
//    4096;
//  - respond(client-final) succeeds exactly when the user is known and the
//    message is right by a reference computation (RFC 5802 3: c=, r=, the
//    proof), and then v= is the reference server signature;
//  - an unknown user never succeeds and fails at the proof like a wrong
//    password would.
//
// Input: one flag byte, then fields separated by 0xFF (never in UTF-8):
//   flags: bits 0-1 hash (SHA-1, SHA-256, SHA-512, SHA-256), bit 2 -PLUS,
//          bit 3 -PLUS was offered, bit 4 the user is known, bit 5 the
//          client-first comes after an empty challenge (else as the initial
//          response), bits 6-7 the client-final: 0 the field as is; 1
//          "c=<right>,r=<right>" + field + ",p=<right proof>"; 2 field +
//          ",p=<right proof>"; 3 as 1 with a flipped proof
//   client-first 0xFF client-final 0xFF binding data
//
// Built by the `fuzz` option (README "Fuzzing"):
//   build-fuzz/fuzz/fuzz_scram_server -max_total_time=600 /tmp/fss fuzz/corpus/scram_server
#include <xmpp/sasl.hpp>

#include "sasl/detail.hpp" // private: lib/src is on the include path
#include "sasl/server.hpp"
#include "scram_reference.hpp"

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sasl = xmpp::sasl;
namespace sd = xmpp::sasl::detail;
using sasl::errc;
using boost::system::error_code;
using namespace scram_ref;
using action = sd::server_step::action;

namespace {

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            std::fprintf(stderr, "fuzz_scram_server: check failed, line %d: %s\n", __LINE__, #cond); \
            std::abort();                                                                        \
        }                                                                                        \
    } while (0)

// FUZZ_SCRAM_TRACE=1 prints how far each input got (to check the seeds).
void trace(const char* what) {
    static const bool on = std::getenv("FUZZ_SCRAM_TRACE") != nullptr;
    if (on) std::fprintf(stderr, "fuzz_scram_server: %s\n", what);
}

constexpr std::size_t max_message = 4096; // scram_server_config's default
constexpr std::string_view server_nonce = "3rfcNHYJY1ZVvWVs7j";
constexpr std::string_view password = "pencil";
const std::string account_salt = "fuzz-salt-16byte";
constexpr std::uint32_t account_iterations = 4096;

// --- RFC 5802 7 grammar of the client's messages -----------------------------------

bool cb_name(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return false;
    return true;
}

// saslname = 1*(value-safe-char / "=2C" / "=3D"); the unescaped name.
std::optional<std::string> saslname(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == ',' || s[i] == '\0') return std::nullopt;
        if (s[i] != '=') {
            out += s[i];
            continue;
        }
        if (s.substr(i + 1, 2) == "2C") out += ',';
        else if (s.substr(i + 1, 2) == "3D") out += '=';
        else return std::nullopt;
        i += 2;
    }
    if (out.empty() || !utf8(out)) return std::nullopt;
    return out;
}

struct first_verdict {
    bool ok = false;
    bool downgrade = false; // 'y' although -PLUS was offered
    std::string gs2, bare, cnonce, user;
    bool p_flag = false;
};

first_verdict judge_first(std::string_view msg, bool plus, bool plus_offered, const bytes& cb_data) {
    first_verdict v;
    if (msg.size() > max_message) return v;
    const auto c1 = msg.find(',');
    if (c1 == std::string_view::npos) return v;
    const auto c2 = msg.find(',', c1 + 1);
    if (c2 == std::string_view::npos) return v;
    const std::string_view flag = msg.substr(0, c1), authz = msg.substr(c1 + 1, c2 - c1 - 1);
    v.gs2 = std::string(msg.substr(0, c2 + 1));
    v.bare = std::string(msg.substr(c2 + 1));
    // 6: "p=" binds (a -PLUS name, a type we accept, data present); "y"
    // and "n" do not (a plain name), and "y" is a downgrade when -PLUS was
    // offered.
    if (flag.starts_with("p=")) {
        const std::string_view type = flag.substr(2);
        if (!cb_name(type) || !plus) return v;
        if (type != "tls-exporter" && type != "tls-unique") return v;
        if (cb_data.empty()) return v;
        v.p_flag = true;
    } else if (flag == "y") {
        if (plus) return v;
        if (plus_offered) {
            v.downgrade = true;
            return v;
        }
    } else if (flag != "n" || plus) {
        return v;
    }
    if (!authz.empty() && (!authz.starts_with("a=") || !saslname(authz.substr(2)))) return v;
    // [reserved-mext ","] username "," nonce ["," extensions]; a present m= fails (5.1).
    const auto parts = split_commas(v.bare);
    for (auto p : parts)
        if (!attr_val(p)) return v;
    if (parts.size() < 2 || !parts[0].starts_with("n=") || !parts[1].starts_with("r=")) return v;
    if (!printable_nonce(parts[1].substr(2))) return v;
    auto user = saslname(parts[0].substr(2));
    if (!user) return v;
    // SASLprep is the library's own (scram_test checks it on RFC 4013's examples).
    if (!sd::saslprep(*user, true)) return v;
    v.cnonce = std::string(parts[1].substr(2));
    v.user = std::move(*user);
    v.ok = true;
    return v;
}

// --- reference computation (RFC 5802 3) ------------------------------------------

const EVP_MD* md_of(int h) {
    static const EVP_MD* const mds[] = {EVP_sha1(), EVP_sha256(), EVP_sha512(), EVP_sha256()};
    return mds[h];
}

struct keys {
    bytes client_key, stored_key, server_key;
};

keys account_keys(const EVP_MD* md) {
    const std::size_t hl = static_cast<std::size_t>(EVP_MD_size(md));
    bytes salted(hl);
    CHECK(PKCS5_PBKDF2_HMAC(password.data(), password.size(),
                            reinterpret_cast<const std::uint8_t*>(account_salt.data()), account_salt.size(),
                            account_iterations, md, hl, salted.data()) == 1);
    keys k;
    k.client_key = hmac(md, salted, "Client Key");
    k.stored_key.resize(EVP_MAX_MD_SIZE);
    unsigned n = 0;
    CHECK(EVP_Digest(k.client_key.data(), k.client_key.size(), k.stored_key.data(), &n, md, nullptr) == 1);
    k.stored_key.resize(n);
    k.server_key = hmac(md, salted, "Server Key");
    return k;
}

// PBKDF2 once per hash, not per input.
const keys& keys_of(int h) {
    static std::map<int, keys> cache;
    auto it = cache.find(h);
    if (it == cache.end()) it = cache.emplace(h, account_keys(md_of(h))).first;
    return it->second;
}

bytes proof_for(int h, std::string_view auth_message) {
    const keys& k = keys_of(h);
    const bytes sig = hmac(md_of(h), k.stored_key, auth_message);
    bytes p(sig.size());
    for (std::size_t i = 0; i < p.size(); ++i) p[i] = k.client_key[i] ^ sig[i];
    return p;
}

void check_failure(const sd::server_step& st) {
    CHECK(st.next == action::failure);
    CHECK(static_cast<int>(st.condition) >= static_cast<int>(errc::aborted) &&
          static_cast<int>(st.condition) <= static_cast<int>(errc::temporary_auth_failure));
    CHECK(!sasl::condition_name(st.condition).empty());
    CHECK(!st.text.empty());
}

void run(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return;
    const std::uint8_t f = data[0];
    std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    std::string_view field[3];
    for (int k = 0; k < 2; ++k) {
        const std::size_t sep = rest.find('\xff');
        field[k] = rest.substr(0, sep);
        if (sep == std::string_view::npos) {
            rest = {};
            break;
        }
        rest = rest.substr(sep + 1);
    }
    field[2] = rest;
    const std::string_view client_first = field[0], final_field = field[1];
    const bytes cb_data(field[2].begin(), field[2].end());

    static constexpr std::string_view names[] = {"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", "SCRAM-SHA-256"};
    static constexpr std::string_view hash_names[] = {"SHA-1", "SHA-256", "SHA-512", "SHA-256"};
    const int h = f & 3;
    const bool plus = f & 4, plus_offered = f & 8, known = f & 16, challenge_first = f & 32;
    const int final_mode = f >> 6;
    const std::string name = std::string(names[h]) + (plus ? "-PLUS" : "");

    sd::scram_server_config cfg;
    cfg.binding_types = {"tls-exporter", "tls-unique"};
    cfg.binding = [&cb_data](std::string_view) { return cb_data; };
    cfg.plus_offered = plus_offered;
    cfg.server_nonce = std::string(server_nonce);
    auto s = sd::make_scram_server(name, cfg);
    CHECK(s);
    CHECK(s->name() == name);

    sd::server_step st;
    if (challenge_first) {
        st = s->start(std::nullopt);
        CHECK(st.next == action::challenge && st.data.empty());
        st = s->respond(client_first);
    } else {
        st = s->start(client_first);
    }
    const first_verdict fv = judge_first(client_first, plus, plus_offered, cb_data);
    if (!fv.ok) {
        check_failure(st);
        CHECK(st.condition == (fv.downgrade ? errc::not_authorized : errc::malformed_request));
        CHECK(s->respond(final_field).next == action::failure); // stays failed
        trace("client-first refused");
        return;
    }
    // An account name is asked for; a name that cannot be one is not.
    const auto account = sd::account_name(fv.user);
    if (account) {
        CHECK(st.next == action::lookup);
        CHECK(st.data == hash_names[h]);
        CHECK(s->identity().username == *account);
        std::optional<sasl::scram_secret> secret;
        if (known) secret = sasl::scram_secret{account_salt, account_iterations, keys_of(h).stored_key, keys_of(h).server_key};
        st = s->found(std::move(secret));
    }
    const bool real = account && known;
    CHECK(st.next == action::challenge);
    const std::string nonce = fv.cnonce + std::string(server_nonce);
    const bytes salt_bytes(account_salt.begin(), account_salt.end());
    const std::string fake = sd::fake_salt(static_cast<sd::scram_hash>(h == 3 ? 1 : h), fv.user);
    const std::string expected_first =
        "r=" + nonce + ",s=" + (real ? ref_b64_encode(salt_bytes) : ref_b64_encode(bytes(fake.begin(), fake.end()))) +
        ",i=4096";
    CHECK(st.data == expected_first);

    // The client-final.
    bytes cbind(fv.gs2.begin(), fv.gs2.end());
    if (fv.p_flag) cbind.insert(cbind.end(), cb_data.begin(), cb_data.end());
    std::string final_msg;
    auto with_proof = [&](std::string without, bool flip) {
        const std::string auth = fv.bare + "," + expected_first + "," + without;
        bytes p = proof_for(h, auth);
        if (flip) p[0] ^= 1;
        return without + ",p=" + ref_b64_encode(p);
    };
    switch (final_mode) {
    case 0: final_msg = std::string(final_field); break;
    case 1: final_msg = with_proof("c=" + ref_b64_encode(cbind) + ",r=" + nonce + std::string(final_field), false); break;
    case 2: final_msg = with_proof(std::string(final_field), false); break;
    default: final_msg = with_proof("c=" + ref_b64_encode(cbind) + ",r=" + nonce + std::string(final_field), true); break;
    }

    // Is it right? The grammar, then c=, r= and the proof (RFC 5802 3, 7).
    bool right = final_msg.size() <= max_message;
    const auto parts = split_commas(final_msg);
    for (auto p : parts) right = right && attr_val(p);
    right = right && parts.size() >= 3 && parts[0].starts_with("c=") && parts[1].starts_with("r=") &&
            parts.back().starts_with("p=");
    for (std::size_t k = 2; right && k + 1 < parts.size(); ++k) right = !parts[k].starts_with("p=");
    std::string auth_message;
    if (right) {
        auto c = ref_b64_decode(parts[0].substr(2));
        right = c && *c == cbind && parts[1].substr(2) == nonce;
        auto p = ref_b64_decode(parts.back().substr(2));
        const std::string_view without = std::string_view(final_msg).substr(0, final_msg.size() - parts.back().size() - 1);
        auth_message = fv.bare + "," + expected_first + "," + std::string(without);
        right = right && p && *p == proof_for(h, auth_message);
    }
    st = s->respond(final_msg);
    if (right && real) {
        CHECK(st.next == action::success);
        const bytes sig = hmac(md_of(h), keys_of(h).server_key, auth_message);
        CHECK(st.data == "v=" + ref_b64_encode(sig));
        CHECK(s->identity().username == *account);
        trace("authenticated");
    } else {
        check_failure(st);
        if (right) CHECK(st.condition == errc::not_authorized && st.text == "invalid-proof"); // unknown: as a wrong proof
        trace(right ? "unknown user refused at the proof" : "client-final refused");
    }
    CHECK(s->respond(final_msg).next == action::failure); // over: nothing more is accepted
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        run(data, size);
    } catch (...) {
        std::fprintf(stderr, "fuzz_scram_server: an exception escaped\n");
        std::abort();
    }
    return 0;
}
