// Tests of lib/src/sasl/server.cpp (the sans-io server mechanisms and
// make_scram_secret), the Cyrus sasldb check of cyrus.cpp, and the
// receiving SASL feature of lib/src/negotiation/server_sasl.cpp.
//
// The peer is always this library's own client side: sasl::make_scram,
// make_anonymous and Cyrus's PLAIN client against the server mechanisms,
// and the client's SASL protocol machine (negotiation/machines.hpp)
// against the feature over a scripted negotiation_stream. Hand-made
// messages cover what our client never sends.
#include "test_catch.hpp"
#include "idle_transport.hpp"

#include <xmpp/error.hpp>
#include <xmpp/negotiator.hpp>
#include <xmpp/sasl.hpp>
#include <xmpp/xml/reader.hpp>

#include "detail/base64.hpp"
#include "negotiation/machines.hpp"
#include "sasl/detail.hpp"
#include "sasl/server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/system/system_error.hpp>

#include <climits>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

namespace sasl = xmpp::sasl;
namespace sd = xmpp::sasl::detail;
using sasl::errc;
using boost::system::error_code;
using action = sd::server_step::action;
using bytes = std::vector<std::uint8_t>;

namespace {

bytes to_bytes(std::string_view s) { return bytes(s.begin(), s.end()); }

sasl::scram_secret secret_for(std::string_view hash, std::string_view password, std::string_view salt = "0123456789abcdef",
                              std::uint32_t iterations = 4096) {
    error_code ec;
    auto s = sasl::make_scram_secret(hash, password, salt, iterations, ec);
    REQUIRE_FALSE(ec);
    return s;
}

// Channel-binding data the client and the server both see (one TLS
// connection), per type.
const std::map<std::string, bytes> binding_data{
    {"tls-exporter", to_bytes("exporter-32-bytes-of-keying-mat!")},
    {"tls-server-end-point", to_bytes("hash-of-the-server-certificate!!")},
    {"tls-unique", to_bytes("finished-12b")},
};

std::function<bytes(std::string_view)> binding_of(std::map<std::string, bytes> data) {
    return [data = std::move(data)](std::string_view type) {
        auto it = data.find(std::string(type));
        return it == data.end() ? bytes{} : it->second;
    };
}

sasl::tls_state client_tls(int version, std::map<std::string, bytes> data = binding_data) {
    sasl::tls_state t;
    t.secure = true;
    t.peer_verified = true;
    t.tls_version = version;
    t.binding = binding_of(std::move(data));
    return t;
}

sd::scram_server_config server_cfg(std::vector<std::string> types = {}, bool plus_offered = false,
                                   std::map<std::string, bytes> data = binding_data) {
    sd::scram_server_config c;
    c.binding_types = std::move(types);
    c.binding = binding_of(std::move(data));
    c.plus_offered = plus_offered;
    return c;
}

// Accounts: username -> password.
using accounts = std::map<std::string, std::string>;

struct exchange_result {
    sd::server_step last;                 // success or failure
    error_code client_ec;                 // the client's verdict (finish() on success)
    bool client_finished = false;         // the client verified the server
    std::vector<std::string> challenges;  // what the server sent
    std::vector<std::string> lookups;     // "username/hash"
    std::vector<std::string> checks;      // PLAIN: "username/password/authzid"
};

// Runs `client` against `server` to the end, as the feature would, with
// `users` behind the lookups (SCRAM verifiers made with their passwords).
exchange_result run(sasl::mechanism& client, sd::server_mechanism& server, const accounts& users,
                    const std::map<std::string, sasl::scram_secret>& verifiers = {}) {
    exchange_result r;
    error_code ec;
    auto initial = client.initial_response(ec);
    REQUIRE_FALSE(ec);
    std::optional<std::string_view> first;
    if (initial) first = *initial;
    sd::server_step st = server.start(first);
    for (int guard = 0; guard < 10; ++guard) {
        switch (st.next) {
        case action::challenge: {
            r.challenges.push_back(st.data);
            const std::string resp = client.respond(st.data, ec);
            if (ec) {
                r.client_ec = ec;
                r.last = st;
                return r;
            }
            st = server.respond(resp);
            break;
        }
        case action::lookup: {
            const std::string user = server.identity().username;
            r.lookups.push_back(user + "/" + st.data);
            std::optional<sasl::scram_secret> s;
            if (auto v = verifiers.find(user + "/" + st.data); v != verifiers.end()) s = v->second;
            else if (auto u = users.find(user); u != users.end()) s = secret_for(st.data, u->second);
            st = server.found(std::move(s));
            break;
        }
        case action::check_password: {
            const auto& id = server.identity();
            r.checks.push_back(id.username + "/" + st.data + "/" + id.authzid);
            auto u = users.find(id.username);
            st = server.checked(u != users.end() && u->second == st.data);
            break;
        }
        case action::success:
            client.finish(st.data, r.client_ec);
            r.client_finished = client.finished();
            r.last = st;
            return r;
        case action::failure: r.last = st; return r;
        }
    }
    FAIL("the exchange does not end");
    return r;
}

std::unique_ptr<sasl::mechanism> scram_client(std::string_view name, const sasl::credentials& c,
                                              const sasl::tls_state& tls = {}, const sasl::scram_config& cfg = {}) {
    error_code ec;
    auto m = sasl::make_scram(name, c, tls, cfg, ec);
    REQUIRE_FALSE(ec);
    REQUIRE(m);
    return m;
}

std::unique_ptr<sd::server_mechanism> scram_server(std::string_view name, const sd::scram_server_config& cfg = {}) {
    auto m = sd::make_scram_server(name, cfg);
    REQUIRE(m);
    return m;
}

// The attributes of a SCRAM message, by name.
std::map<char, std::string> attrs(std::string_view msg) {
    auto a = sd::split_attributes(msg);
    REQUIRE(a);
    std::map<char, std::string> out;
    for (const auto& x : *a) out[x.name] = std::string(x.value);
    return out;
}

constexpr std::string_view hashes[] = {"SHA-1", "SHA-256", "SHA-512"};

} // namespace

// --- SCRAM ----------------------------------------------------------------------

TEST_CASE("SCRAM server: our client authenticates for every hash, without binding") {
    for (auto h : hashes) {
        const std::string name = "SCRAM-" + std::string(h);
        CAPTURE(name);
        auto c = scram_client(name, {"juliet", "r0m30", ""});
        auto s = scram_server(name);
        auto r = run(*c, *s, {{"juliet", "r0m30"}});
        CHECK(r.last.next == action::success);
        CHECK(r.last.data.starts_with("v="));
        CHECK_FALSE(r.client_ec);
        CHECK(r.client_finished); // the client verified the server signature
        CHECK(r.lookups == std::vector<std::string>{"juliet/" + std::string(h)});
        CHECK(s->identity().username == "juliet");
        CHECK(s->identity().mechanism == name);
        CHECK(s->identity().authzid.empty());
        // The server-first: our nonce extended by 32 random characters.
        REQUIRE(r.challenges.size() == 1);
        auto sf = attrs(r.challenges[0]);
        CHECK(sf['r'].size() == 32 + 32);
        CHECK(sf['i'] == "4096");
    }
}

TEST_CASE("SCRAM server: -PLUS with every binding type and hash") {
    struct type_case {
        std::string type;
        int version;
    };
    for (const auto& tc : {type_case{"tls-exporter", 0x0304}, type_case{"tls-server-end-point", 0x0304},
                           type_case{"tls-unique", 0x0303}, type_case{"tls-exporter", 0x0303}}) {
        for (auto h : hashes) {
            const std::string name = "SCRAM-" + std::string(h) + "-PLUS";
            CAPTURE(name, tc.type, tc.version);
            sasl::scram_config cc;
            cc.binding_type = tc.type;
            auto c = scram_client(name, {"juliet", "r0m30", ""}, client_tls(tc.version), cc);
            auto s = scram_server(name, server_cfg({"tls-exporter", "tls-server-end-point", "tls-unique"}, true));
            auto r = run(*c, *s, {{"juliet", "r0m30"}});
            CHECK(r.last.next == action::success);
            CHECK(r.client_finished);
        }
    }
}

TEST_CASE("SCRAM server: a wrong password fails at the proof with not-authorized") {
    for (auto h : hashes) {
        const std::string name = "SCRAM-" + std::string(h);
        auto c = scram_client(name, {"juliet", "wrong", ""});
        auto s = scram_server(name);
        auto r = run(*c, *s, {{"juliet", "r0m30"}});
        CHECK(r.last.next == action::failure);
        CHECK(r.last.condition == errc::not_authorized);
        CHECK(r.last.text == "invalid-proof");
        CHECK(r.challenges.size() == 1); // the exchange went to the end
        CHECK_FALSE(r.client_finished);
    }
}

TEST_CASE("SCRAM server: an unknown user cannot be told from a wrong password until the end") {
    // A real account with a 16-byte salt and 4096 iterations, as
    // make_scram_secret() makes by default.
    error_code ec;
    std::map<std::string, sasl::scram_secret> verifiers{
        {"juliet/SHA-256", sasl::make_scram_secret("SHA-256", "r0m30", "", 4096, ec)}};
    REQUIRE_FALSE(ec);
    REQUIRE(verifiers.begin()->second.salt.size() == 16);

    auto exchange = [&](const std::string& user) {
        auto c = scram_client("SCRAM-SHA-256", {user, "guess", ""});
        auto s = scram_server("SCRAM-SHA-256");
        return run(*c, *s, {}, verifiers);
    };
    auto known = exchange("juliet");
    auto unknown = exchange("romeo");
    auto unknown_again = exchange("romeo");
    auto other = exchange("mercutio");
    // Both were looked up; both got a server-first of the same shape.
    CHECK(unknown.lookups == std::vector<std::string>{"romeo/SHA-256"});
    REQUIRE(known.challenges.size() == 1);
    REQUIRE(unknown.challenges.size() == 1);
    auto k = attrs(known.challenges[0]), u = attrs(unknown.challenges[0]), u2 = attrs(unknown_again.challenges[0]);
    CHECK(k['s'].size() == u['s'].size());
    CHECK(k['i'] == u['i']);
    CHECK(k['r'].size() == u['r'].size());
    // The fake salt is stable (asking twice cannot reveal it is made up),
    // differs per user, and is the one fake_salt() derives.
    CHECK(u['s'] == u2['s']);
    CHECK(u['s'] != attrs(other.challenges[0])['s']);
    CHECK(u['s'] == sd::base64_encode(sd::fake_salt(sd::scram_hash::sha256, "romeo")));
    CHECK(u['s'] != sd::base64_encode(sd::fake_salt(sd::scram_hash::sha1, "romeo")));
    // And the end is the same failure.
    CHECK(known.last.next == action::failure);
    CHECK(unknown.last.next == action::failure);
    CHECK(known.last.condition == unknown.last.condition);
    CHECK(known.last.text == unknown.last.text);
    CHECK(unknown.last.condition == errc::not_authorized);
}

TEST_CASE("SCRAM server: names that cannot be accounts are treated as unknown users, never looked up") {
    for (std::string user : {"us@er", "a b", "x/y"}) {
        CAPTURE(user);
        auto c = scram_client("SCRAM-SHA-1", {user, "pw", ""});
        auto s = scram_server("SCRAM-SHA-1");
        auto r = run(*c, *s, {{user, "pw"}});
        CHECK(r.lookups.empty());
        REQUIRE(r.challenges.size() == 1);
        CHECK(r.last.condition == errc::not_authorized);
        CHECK(r.last.text == "invalid-proof");
    }
}

TEST_CASE("SCRAM server: usernames are unescaped, SASLprep'd and case-mapped for the lookup") {
    auto c = scram_client("SCRAM-SHA-256", {"Us,er=X", "pw", ""});
    auto s = scram_server("SCRAM-SHA-256");
    auto r = run(*c, *s, {{"us,er=x", "pw"}});
    CHECK(r.lookups == std::vector<std::string>{"us,er=x/SHA-256"});
    CHECK(r.last.next == action::success);
    CHECK(r.client_finished);
}

TEST_CASE("SCRAM server: an unusable verifier fails like a wrong password") {
    for (int defect = 0; defect < 4; ++defect) {
        CAPTURE(defect);
        auto v = secret_for("SHA-256", "pw");
        if (defect == 0) v.salt.clear();
        if (defect == 1) v.iterations = 0;
        if (defect == 2) v.stored_key.pop_back();
        if (defect == 3) v.server_key.push_back(0);
        auto c = scram_client("SCRAM-SHA-256", {"juliet", "pw", ""});
        auto s = scram_server("SCRAM-SHA-256");
        auto r = run(*c, *s, {}, {{"juliet/SHA-256", v}});
        CHECK(r.last.next == action::failure);
        CHECK(r.last.text == "invalid-proof");
    }
}

TEST_CASE("SCRAM server reproduces the RFC 5802 and RFC 7677 exchanges") {
    struct vector {
        std::string_view mech, hash, cnonce, snonce, salt_b64, server_first, client_final, server_final;
    };
    const vector vectors[] = {
        {"SCRAM-SHA-1", "SHA-1", "fyko+d2lbbFgONRv9qkxdawL", "3rfcNHYJY1ZVvWVs7j", "QSXCR+Q6sek8bf92",
         "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
         "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
         "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="},
        {"SCRAM-SHA-256", "SHA-256", "rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
         "W22ZaJ0SNY7soEsUEjb6gQ==",
         "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
         "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
         "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="},
    };
    for (const auto& v : vectors) {
        CAPTURE(v.mech);
        auto cfg = server_cfg();
        cfg.server_nonce = std::string(v.snonce);
        auto s = scram_server(v.mech, cfg);
        auto st = s->start("n,,n=user,r=" + std::string(v.cnonce));
        REQUIRE(st.next == action::lookup);
        CHECK(st.data == v.hash);
        CHECK(s->identity().username == "user");
        auto salt = xmpp::detail::base64_decode(v.salt_b64);
        REQUIRE(salt);
        st = s->found(secret_for(v.hash, "pencil", *salt, 4096));
        REQUIRE(st.next == action::challenge);
        CHECK(st.data == v.server_first);
        st = s->respond(v.client_final);
        REQUIRE(st.next == action::success);
        CHECK(st.data == v.server_final);
    }
}

TEST_CASE("SCRAM server: tampered client-final messages fail") {
    // A client-final computed by our client, then changed in transit.
    auto prepare = [](std::string& client_first, std::string& server_first, std::string& client_final,
                      std::unique_ptr<sd::server_mechanism>& s, const sd::scram_server_config& cfg,
                      std::string_view mech, const sasl::tls_state& tls, const sasl::scram_config& cc) {
        auto c = scram_client(mech, {"juliet", "r0m30", ""}, tls, cc);
        error_code ec;
        client_first = *c->initial_response(ec);
        s = scram_server(mech, cfg);
        auto st = s->start(client_first);
        REQUIRE(st.next == action::lookup);
        st = s->found(secret_for("SHA-256", "r0m30"));
        REQUIRE(st.next == action::challenge);
        server_first = st.data;
        client_final = c->respond(server_first, ec);
        REQUIRE_FALSE(ec);
    };
    std::string cf, sf, fin;
    std::unique_ptr<sd::server_mechanism> s;

    SECTION("the untouched message passes (the control)") {
        prepare(cf, sf, fin, s, server_cfg(), "SCRAM-SHA-256", {}, {});
        CHECK(s->respond(fin).next == action::success);
    }
    SECTION("a flipped proof") {
        prepare(cf, sf, fin, s, server_cfg(), "SCRAM-SHA-256", {}, {});
        auto a = attrs(fin);
        auto proof = *xmpp::detail::base64_decode(a['p']);
        proof[0] ^= 1;
        const std::string tampered = fin.substr(0, fin.rfind(",p=")) + ",p=" + xmpp::detail::base64_encode(proof);
        auto st = s->respond(tampered);
        CHECK(st.condition == errc::not_authorized);
        CHECK(st.text == "invalid-proof");
    }
    SECTION("a short proof") {
        prepare(cf, sf, fin, s, server_cfg(), "SCRAM-SHA-256", {}, {});
        const std::string tampered = fin.substr(0, fin.rfind(",p=")) + ",p=AAAA";
        CHECK(s->respond(tampered).text == "invalid-proof");
    }
    SECTION("another nonce") {
        prepare(cf, sf, fin, s, server_cfg(), "SCRAM-SHA-256", {}, {});
        auto a = attrs(fin);
        std::string tampered = fin;
        // Another last character (the nonce is random: it may already end in 'x').
        const char last = a['r'].back() == 'x' ? 'y' : 'x';
        tampered.replace(tampered.find(a['r']), a['r'].size(), a['r'].substr(0, a['r'].size() - 1) + last);
        CHECK(s->respond(tampered).condition == errc::not_authorized);
    }
    SECTION("the client nonce alone") {
        prepare(cf, sf, fin, s, server_cfg(), "SCRAM-SHA-256", {}, {});
        auto a = attrs(fin);
        std::string tampered = fin;
        const std::string cnonce = attrs(cf.substr(3))['r'];
        tampered.replace(tampered.find(a['r']), a['r'].size(), cnonce);
        CHECK(s->respond(tampered).condition == errc::not_authorized);
    }
    SECTION("other binding data than the server's connection") {
        sasl::scram_config cc;
        cc.binding_type = "tls-exporter";
        auto other = binding_data;
        other["tls-exporter"] = to_bytes("a different TLS connection.....");
        prepare(cf, sf, fin, s, server_cfg({"tls-exporter"}, true), "SCRAM-SHA-256-PLUS", client_tls(0x0304, other),
                cc);
        auto st = s->respond(fin);
        CHECK(st.condition == errc::not_authorized);
        CHECK(st.text == "channel-bindings-dont-match");
    }
    SECTION("a GS2 header in c= that differs from the client-first's") {
        prepare(cf, sf, fin, s, server_cfg(), "SCRAM-SHA-256", {}, {});
        // The client sent "n,,"; c= claims "y,,".
        std::string tampered = fin;
        tampered.replace(0, std::string("c=biws").size(), "c=" + sd::base64_encode(std::string_view("y,,")));
        CHECK(s->respond(tampered).text == "channel-bindings-dont-match");
    }
    SECTION("an extension before the proof is accepted") {
        prepare(cf, sf, fin, s, server_cfg(), "SCRAM-SHA-256", {}, {});
        const auto p = fin.rfind(",p=");
        CHECK(s->respond(fin.substr(0, p) + ",x=1" + fin.substr(p)).next == action::failure); // the proof covers it
    }
    SECTION("a proof that is not base64") {
        prepare(cf, sf, fin, s, server_cfg(), "SCRAM-SHA-256", {}, {});
        auto st = s->respond(fin.substr(0, fin.rfind(",p=")) + ",p=AA=A");
        CHECK(st.condition == errc::malformed_request);
        CHECK(st.text == "invalid-encoding");
    }
    SECTION("malformed final messages") {
        for (std::string bad : {"", "c=biws", "r=x,c=biws,p=AAAA", "c=biws,r=x", "c=b!ws,r=x,p=AAAA",
                                "c=biws,r=x,p=AAAA,p=AAAA", "c=biws,r=x,,p=AAAA"}) {
            CAPTURE(bad);
            prepare(cf, sf, fin, s, server_cfg(), "SCRAM-SHA-256", {}, {});
            auto st = s->respond(bad);
            CHECK(st.next == action::failure);
            CHECK(st.condition == errc::malformed_request);
        }
    }
}

TEST_CASE("SCRAM server: the GS2 channel-binding flag (RFC 5802 6)") {
    const accounts users{{"juliet", "r0m30"}};
    SECTION("'y' while -PLUS was offered: a downgrade, refused") {
        sasl::scram_config cc;
        cc.server_lacks_plus = true; // a client that could bind and saw no -PLUS
        auto c = scram_client("SCRAM-SHA-256", {"juliet", "r0m30", ""}, client_tls(0x0304), cc);
        error_code ec;
        auto first = *c->initial_response(ec);
        REQUIRE(first.starts_with("y,,"));
        auto st = scram_server("SCRAM-SHA-256", server_cfg({"tls-exporter"}, true))->start(first);
        CHECK(st.next == action::failure);
        CHECK(st.condition == errc::not_authorized);
        CHECK(st.text == "server-does-support-channel-binding");
    }
    SECTION("'y' where no -PLUS was offered: fine") {
        sasl::scram_config cc;
        cc.server_lacks_plus = true;
        auto c = scram_client("SCRAM-SHA-256", {"juliet", "r0m30", ""}, client_tls(0x0304), cc);
        auto s = scram_server("SCRAM-SHA-256", server_cfg({}, false));
        auto r = run(*c, *s, users);
        CHECK(r.last.next == action::success);
        CHECK(r.client_finished);
    }
    SECTION("flags that do not fit the mechanism name") {
        struct bad_case {
            std::string mech, first, text;
        };
        for (const auto& b : {
                 bad_case{"SCRAM-SHA-256", "p=tls-exporter,,n=juliet,r=abc", "channel binding needs a -PLUS mechanism"},
                 bad_case{"SCRAM-SHA-256-PLUS", "n,,n=juliet,r=abc", "a -PLUS mechanism needs channel binding"},
                 bad_case{"SCRAM-SHA-256-PLUS", "y,,n=juliet,r=abc", "a -PLUS mechanism needs channel binding"},
                 bad_case{"SCRAM-SHA-256-PLUS", "p=tls-unique,,n=juliet,r=abc", "unsupported-channel-binding-type"},
                 bad_case{"SCRAM-SHA-256-PLUS", "p=tls-wxyz,,n=juliet,r=abc", "unsupported-channel-binding-type"},
                 bad_case{"SCRAM-SHA-256-PLUS", "p=,,n=juliet,r=abc", "invalid-encoding"},
                 bad_case{"SCRAM-SHA-256-PLUS", "p=tls_exporter,,n=juliet,r=abc", "invalid-encoding"},
                 bad_case{"SCRAM-SHA-256", "x,,n=juliet,r=abc", "invalid-encoding"},
             }) {
            CAPTURE(b.mech, b.first);
            auto st = scram_server(b.mech, server_cfg({"tls-exporter"}, true))->start(b.first);
            CHECK(st.next == action::failure);
            CHECK(st.condition == errc::malformed_request);
            CHECK(st.text == b.text);
        }
    }
    SECTION("-PLUS needs an accepted type to exist at all") {
        CHECK_FALSE(sd::make_scram_server("SCRAM-SHA-256-PLUS", server_cfg({}, false)));
        CHECK_FALSE(sd::make_scram_server("SCRAM-MD5", server_cfg()));
        CHECK_FALSE(sd::make_scram_server("SHA-256", server_cfg()));
    }
}

TEST_CASE("SCRAM server: client-first messages are parsed strictly") {
    struct first_case {
        std::string msg;
        errc condition;
        std::string text;
    };
    for (const auto& c : {
             first_case{"n,,n=us=2Xer,r=abc", errc::malformed_request, "invalid-username-encoding"},
             first_case{"n,,n=user=,r=abc", errc::malformed_request, "invalid-username-encoding"},
             first_case{"n,,n=us=2cer,r=abc", errc::malformed_request, "invalid-username-encoding"}, // lower case
             first_case{"n,,n=\x01user,r=abc", errc::malformed_request, "invalid-username-encoding"}, // SASLprep
             first_case{"n,,n=\xc3\x28,r=abc", errc::malformed_request, "invalid-encoding"},          // not UTF-8
             first_case{"n,,m=ext,n=user,r=abc", errc::malformed_request, "extensions-not-supported"},
             first_case{"n,,r=abc,n=user", errc::malformed_request, "invalid-encoding"}, // order
             first_case{"n,,n=user", errc::malformed_request, "invalid-encoding"},
             first_case{"n,,n=user,r=a,bc", errc::malformed_request, "invalid-encoding"},
             first_case{"n,,n=user,r=", errc::malformed_request, "invalid-encoding"},
             first_case{"n,,n=user,r=ab\x7f", errc::malformed_request, "invalid-encoding"},
             first_case{"n,a=,n=user,r=abc", errc::malformed_request, "invalid-encoding"},
             first_case{"n,x=admin,n=user,r=abc", errc::malformed_request, "invalid-encoding"},
             first_case{"n,a=ad=mn,n=user,r=abc", errc::malformed_request, "invalid-encoding"},
             first_case{"n,n=user,r=abc", errc::malformed_request, "invalid-encoding"},
             first_case{"n", errc::malformed_request, "invalid-encoding"},
             first_case{"", errc::malformed_request, "invalid-encoding"},
         }) {
        CAPTURE(c.msg);
        auto st = scram_server("SCRAM-SHA-1")->start(c.msg);
        CHECK(st.next == action::failure);
        CHECK(st.condition == c.condition);
        CHECK(st.text == c.text);
    }
    SECTION("extensions after the nonce are ignored; =2C and =3D are ',' and '='") {
        auto s = scram_server("SCRAM-SHA-1");
        auto st = s->start("n,a=a=3Db=2Cc,n=us=2Cer=3Dx,r=abc,x=ext,y=more");
        CHECK(st.next == action::lookup);
        CHECK(s->identity().username == "us,er=x");
        CHECK(s->identity().authzid == "a=b,c");
    }
    SECTION("no initial response: an empty challenge first (RFC 6120 6.4.2)") {
        auto s = scram_server("SCRAM-SHA-1");
        auto st = s->start(std::nullopt);
        CHECK(st.next == action::challenge);
        CHECK(st.data.empty());
        CHECK(s->respond("n,,n=user,r=abc").next == action::lookup);
    }
    SECTION("oversize messages are refused unparsed") {
        auto cfg = server_cfg();
        cfg.max_message_bytes = 64;
        auto st = scram_server("SCRAM-SHA-1", cfg)->start("n,,n=user,r=" + std::string(60, 'a'));
        CHECK(st.condition == errc::malformed_request);
        CHECK(st.text == "message too long");
        CHECK(scram_server("SCRAM-SHA-1", cfg)->start("n,,n=user,r=" + std::string(52, 'a')).next == action::lookup);
    }
    SECTION("calls out of turn fail") {
        auto s = scram_server("SCRAM-SHA-1");
        CHECK(s->respond("n,,n=user,r=abc").condition == errc::malformed_request);
        auto s2 = scram_server("SCRAM-SHA-1");
        REQUIRE(s2->start("n,,n=user,r=abc").next == action::lookup);
        CHECK(s2->respond("c=biws,r=abc,p=AAAA").next == action::failure);
        auto s3 = scram_server("SCRAM-SHA-1");
        CHECK(s3->found(std::nullopt).next == action::failure);
        CHECK(s3->checked(true).next == action::failure);
    }
}

TEST_CASE("SCRAM server: server nonces are random") {
    std::set<std::string> seen;
    for (int i = 0; i < 20; ++i) {
        auto s = scram_server("SCRAM-SHA-1");
        REQUIRE(s->start("n,,n=user,r=abc").next == action::lookup);
        auto st = s->found(std::nullopt);
        auto r = attrs(st.data)['r'];
        REQUIRE(r.starts_with("abc"));
        CHECK(sd::is_printable_nonce(r));
        seen.insert(r);
    }
    CHECK(seen.size() == 20);
}

TEST_CASE("make_scram_secret") {
    error_code ec;
    SECTION("the RFC 5802 verifier is what the exchange checks against") {
        // StoredKey and ServerKey of user/pencil in RFC 5802 5, computed by
        // the client's formulas (scram_test checks those on the vectors).
        auto s = sasl::make_scram_secret("SHA-1", "pencil", *xmpp::detail::base64_decode("QSXCR+Q6sek8bf92"), 4096, ec);
        REQUIRE_FALSE(ec);
        CHECK(s.iterations == 4096);
        CHECK(s.stored_key.size() == 20);
        CHECK(s.server_key.size() == 20);
        bytes salted;
        const std::string salt = *xmpp::detail::base64_decode("QSXCR+Q6sek8bf92");
        REQUIRE(sd::hi(sd::scram_hash::sha1, "pencil", to_bytes(salt), 4096, salted));
        CHECK(s.server_key == sd::hmac(sd::scram_hash::sha1, salted, "Server Key"));
        CHECK(s.stored_key == sd::hash(sd::scram_hash::sha1, sd::hmac(sd::scram_hash::sha1, salted, "Client Key")));
    }
    SECTION("sizes per hash; an empty salt is 16 random bytes") {
        for (auto [h, n] : {std::pair{"SHA-1", 20u}, std::pair{"SHA-256", 32u}, std::pair{"SHA-512", 64u}}) {
            auto a = sasl::make_scram_secret(h, "pw", "", 4096, ec);
            REQUIRE_FALSE(ec);
            auto b = sasl::make_scram_secret(h, "pw", "", 4096, ec);
            CHECK(a.salt.size() == 16);
            CHECK(a.salt != b.salt);
            CHECK(a.stored_key.size() == n);
            CHECK(a.stored_key != b.stored_key);
        }
    }
    SECTION("SASLprep of the password (stored string)") {
        // U+00AD SOFT HYPHEN maps to nothing (RFC 4013 2.1).
        CHECK(sasl::make_scram_secret("SHA-256", "p\xc2\xadw", "salt", 4096, ec).stored_key ==
              sasl::make_scram_secret("SHA-256", "pw", "salt", 4096, ec).stored_key);
        sasl::make_scram_secret("SHA-256", "p\x07w", "salt", 4096, ec);
        CHECK(ec == errc::invalid_credentials);
    }
    SECTION("errors") {
        auto s = sasl::make_scram_secret("MD5", "pw", "", 4096, ec);
        CHECK(ec == errc::invalid_mechanism);
        CHECK(s.stored_key.empty());
        sasl::make_scram_secret("SCRAM-SHA-1", "pw", "", 4096, ec);
        CHECK(ec == errc::invalid_mechanism);
        sasl::make_scram_secret("SHA-1", "pw", "", 0, ec);
        CHECK(ec == errc::invalid_configuration);
        sasl::make_scram_secret("SHA-1", "pw", "", static_cast<std::uint32_t>(INT_MAX) + 1u, ec);
        CHECK(ec == errc::invalid_configuration);
    }
}

// --- PLAIN --------------------------------------------------------------------------

TEST_CASE("PLAIN server: Cyrus's PLAIN client authenticates") {
    sasl::tls_state tls = client_tls(0x0304);
    for (std::string authzid : {"", "juliet@example.org"}) {
        error_code ec;
        auto c = sasl::make_cyrus("PLAIN", {"Juliet", "r0m30", authzid}, tls, "example.org", ec);
        REQUIRE(c);
        auto s = sd::make_plain_server();
        auto r = run(*c, *s, {{"juliet", "r0m30"}});
        CHECK(r.last.next == action::success);
        CHECK(r.last.data.empty());
        CHECK(r.checks == std::vector<std::string>{"juliet/r0m30/" + authzid});
        CHECK(s->identity().authzid == authzid);
        CHECK(s->identity().mechanism == "PLAIN");
    }
    error_code ec;
    auto c = sasl::make_cyrus("PLAIN", {"juliet", "wrong", ""}, tls, "example.org", ec);
    REQUIRE(c);
    auto s = sd::make_plain_server();
    auto r = run(*c, *s, {{"juliet", "r0m30"}});
    CHECK(r.last.next == action::failure);
    CHECK(r.last.condition == errc::not_authorized);
}

TEST_CASE("PLAIN server: the message (RFC 4616 2)") {
    using namespace std::string_literals;
    struct plain_case {
        std::string msg;
        std::optional<errc> condition; // nullopt: a check_password step
    };
    for (const auto& c : {
             plain_case{"\0juliet\0pw"s, std::nullopt},
             plain_case{"admin@example.org\0juliet\0pw"s, std::nullopt},
             plain_case{"juliet\0pw"s, errc::malformed_request},
             plain_case{"\0juliet\0pw\0"s, errc::malformed_request},
             plain_case{"\0\0pw"s, errc::malformed_request},
             plain_case{"\0juliet\0"s, errc::malformed_request},
             plain_case{"\0jul\xc3\x28iet\0pw"s, errc::malformed_request},
             plain_case{"\xff\0juliet\0pw"s, errc::malformed_request},
             plain_case{"\0jul@iet\0pw"s, errc::not_authorized}, // no account has this name
             plain_case{"\0juliet\0p\x07w"s, errc::not_authorized}, // SASLprep refuses the password
             plain_case{""s, errc::malformed_request},
         }) {
        CAPTURE(c.msg);
        auto s = sd::make_plain_server();
        auto st = s->start(c.msg);
        if (!c.condition) {
            CHECK(st.next == action::check_password);
            CHECK(st.data == "pw");
            CHECK(s->identity().username == "juliet");
        } else {
            CHECK(st.next == action::failure);
            CHECK(st.condition == *c.condition);
        }
    }
    SECTION("no initial response; oversize") {
        auto s = sd::make_plain_server();
        CHECK(s->start(std::nullopt).next == action::challenge);
        CHECK(s->respond(std::string("\0juliet\0pw", 10)).next == action::check_password);
        CHECK(s->checked(true).next == action::success);
        auto s2 = sd::make_plain_server(16);
        CHECK(s2->start(std::string("\0juliet\0") + std::string(9, 'p')).condition == errc::malformed_request);
    }
}

// --- ANONYMOUS ------------------------------------------------------------------------

TEST_CASE("ANONYMOUS server (RFC 4505)") {
    auto c = sasl::make_anonymous();
    auto s = sd::make_anonymous_server();
    auto r = run(*c, *s, {});
    CHECK(r.last.next == action::success);
    CHECK(r.client_finished);
    CHECK(s->identity().username.empty());

    std::string e255;
    for (int i = 0; i < 255; ++i) e255 += "\xc3\xa9"; // 255 characters, 510 bytes
    CHECK(sd::make_anonymous_server()->start(e255).next == action::success);
    CHECK(sd::make_anonymous_server()->start(e255 + "x").condition == errc::malformed_request);
    CHECK(sd::make_anonymous_server()->start("sirhc@example.org").next == action::success);
    CHECK(sd::make_anonymous_server()->start("\xc3\x28").condition == errc::malformed_request);
    auto s2 = sd::make_anonymous_server();
    CHECK(s2->start(std::nullopt).next == action::challenge);
    CHECK(s2->respond("").next == action::success);

    const std::string a = sd::random_localpart(), b = sd::random_localpart();
    CHECK(a.size() == 5 + 32);
    CHECK(a.starts_with("anon-"));
    CHECK(a != b);
}

// --- Cyrus sasldb -----------------------------------------------------------------------

namespace {

struct temp_dir {
    std::string path;
    temp_dir() {
        char tmpl[] = "/tmp/xmpp-sasl-server-test-XXXXXX";
        REQUIRE(::mkdtemp(tmpl));
        path = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

std::string find_saslpasswd2() {
    for (const char* p : {"/usr/sbin/saslpasswd2", "/usr/bin/saslpasswd2"})
        if (::access(p, X_OK) == 0) return p;
    return {};
}

std::string read_maps() {
    std::ifstream f("/proc/self/maps");
    return std::string(std::istreambuf_iterator<char>(f), {});
}

} // namespace

TEST_CASE("PLAIN against a real sasldb through Cyrus's server side, without OpenSSL's libcrypto") {
    const std::string tool = find_saslpasswd2();
    INFO("saslpasswd2 (package sasl2-bin) is needed: scripts/setup.sh test");
    REQUIRE_FALSE(tool.empty());
    temp_dir d;
    const std::string db = d.path + "/sasldb2";
    // saslpasswd2 -p reads the password from standard input.
    const std::string cmd = "printf %s 'r0m30' | " + tool + " -p -f " + db + " -u example.org -c juliet";
    REQUIRE(std::system(cmd.c_str()) == 0);
    REQUIRE(::access(db.c_str(), R_OK) == 0);

    error_code ec;
    CHECK(sd::cyrus_checkpass(db, "example.org", "juliet", "r0m30", ec));
    CHECK_FALSE(ec);
    CHECK_FALSE(sd::cyrus_checkpass(db, "example.org", "juliet", "wrong", ec));
    CHECK_FALSE(ec);
    CHECK_FALSE(sd::cyrus_checkpass(db, "example.org", "romeo", "r0m30", ec));
    CHECK_FALSE(ec);
    CHECK_FALSE(sd::cyrus_checkpass(db, "example.net", "juliet", "r0m30", ec)); // another realm
    CHECK_FALSE(ec);
    CHECK_FALSE(sd::cyrus_checkpass(d.path + "/missing", "example.org", "juliet", "r0m30", ec));
    CHECK(ec == errc::temporary_auth_failure);
    INFO(ec.message());
    CHECK(ec.message().find("missing") != std::string::npos);

    const std::string maps = read_maps();
    CHECK(maps.find("libsasldb.so") != std::string::npos); // the check really went through the plugin
    if (sd::cyrus_filters_plugins()) {
        CHECK(maps.find("libcrypto.so.3") == std::string::npos);
        CHECK(maps.find("libscram.so") == std::string::npos);
    }
}

// --- The receiving SASL feature ---------------------------------------------------------

namespace {

namespace asio = boost::asio;

struct script_done {};

xmpp::xml::element el(std::string_view text) {
    xmpp::xml::stream_header ctx;
    ctx.default_ns = "jabber:client";
    ctx.prefixes = {{"stream", std::string(xmpp::xml::ns::stream)}};
    error_code ec;
    auto e = xmpp::xml::parse_element(text, ec, ctx);
    INFO(text);
    REQUIRE_FALSE(ec);
    return e;
}

struct fake_transport final : xmpp::test::idle_transport {
    fake_transport(asio::any_io_executor ex, bool secure, int version, std::map<std::string, bytes> cb)
        : idle_transport(std::move(ex)), secure_(secure), version_(version), cb_(std::move(cb)) {}
    bool is_secure() const noexcept override { return secure_; }
    int tls_version() const noexcept override { return version_; }
    std::vector<std::uint8_t> channel_binding(std::string_view type) const override {
        auto it = cb_.find(std::string(type));
        return it == cb_.end() ? bytes{} : it->second;
    }
    bool secure_;
    int version_;
    std::map<std::string, bytes> cb_;
};

// The server's side of one stream. The client is this library's SASL
// machine over a queue of client mechanisms (a new one starts after each
// <failure/>), or raw elements queued by the test.
struct peer_stream final : xmpp::negotiation_stream {
    peer_stream(asio::any_io_executor ex, bool secure, int version = 0x0304,
                std::map<std::string, bytes> cb = binding_data)
        : transport_(std::move(ex), secure, version, std::move(cb)) {}

    asio::awaitable<void> send(xmpp::xml::node) override { co_return; }
    asio::awaitable<void> send_raw(std::string_view x) override {
        sent.emplace_back(x);
        if (machine) {
            auto st = machine->on_element(el(x).root());
            if (!st.out.empty()) inbox.push_back(st.out);
            if (st.next == xmpp::detail::step::next_t::fail) {
                client_errors.push_back(st.ec);
                machine.reset();
            } else if (st.next == xmpp::detail::step::next_t::done) {
                client_done = true;
                machine.reset();
            }
        }
        // After a <failure/> the next client mechanism tries (RFC 6120 6.4.5).
        if (!machine && x.find("<failure") != std::string_view::npos && !clients.empty())
            inbox.push_back(start_next());
        co_return;
    }
    asio::awaitable<xmpp::xml::element> receive() override {
        if (inbox.empty()) throw script_done();
        auto e = el(inbox.front());
        inbox.pop_front();
        co_return e;
    }
    xmpp::session_state state() const noexcept override { return state_; }
    xmpp::transport& current_transport() noexcept override { return transport_; }
    std::unique_ptr<xmpp::transport> take_transport() override { throw script_done(); }
    const xmpp::jid& local_address() const noexcept override { return domain_; }
    void set_local_address(xmpp::jid j) override { domain_ = std::move(j); }
    const std::string& peer_domain() const noexcept override { return empty_; }
    void set_auth_mechanism(std::string name) override { mechanism = std::move(name); }
    bool is_initiator() const noexcept override { return false; }
    const xmpp::jid& peer_address() const noexcept override { return peer_; }
    void set_peer_address(xmpp::jid j) override { peer_ = std::move(j); }

    // The <auth/> of the next client mechanism.
    std::string start_next() {
        REQUIRE_FALSE(clients.empty());
        machine.emplace(std::move(clients.front()));
        clients.pop_front();
        auto st = machine->start();
        REQUIRE(st.next == xmpp::detail::step::next_t::receive);
        return st.out;
    }

    fake_transport transport_;
    xmpp::session_state state_ = xmpp::session_state::received;
    xmpp::jid domain_ = xmpp::jid::parse("example.org");
    xmpp::jid peer_;
    std::string empty_;
    std::string mechanism;
    std::deque<std::unique_ptr<sasl::mechanism>> clients;
    std::optional<xmpp::detail::sasl_machine> machine;
    std::deque<std::string> inbox;
    std::vector<std::string> sent;
    std::vector<error_code> client_errors;
    bool client_done = false;
};

struct feature_run {
    bool ok = false;
    error_code ec; // the feature's system_error
    bool script_ended = false;
    xmpp::negotiate_result result;
};

// Runs the feature's negotiate() with `auth` as the element the client
// started with (the first client's <auth/> when empty).
feature_run negotiate(const xmpp::stream_feature& f, peer_stream& s, std::string auth = {}) {
    if (auth.empty()) auth = s.start_next();
    feature_run r;
    std::any data = el(auth);
    REQUIRE(f.starts_with(std::any_cast<xmpp::xml::element&>(data).root()));
    asio::io_context io;
    asio::co_spawn(io, f.negotiate(s, data), [&](std::exception_ptr e, xmpp::negotiate_result nr) {
        try {
            if (e) std::rethrow_exception(e);
            r.ok = true;
            r.result = std::move(nr);
        } catch (const script_done&) {
            r.script_ended = true;
        } catch (const boost::system::system_error& se) {
            r.ec = se.code();
        }
    });
    io.run();
    return r;
}

std::string list(const xmpp::stream_feature& f, const peer_stream& s, bool* required = nullptr) {
    xmpp::xml::element features("stream:features", xmpp::xml::ns::stream);
    asio::io_context io;
    bool req = false;
    asio::co_spawn(io, f.list(features.root(), s), [&](std::exception_ptr e, bool r) {
        REQUIRE_FALSE(e);
        req = r;
    });
    io.run();
    if (required) *required = req;
    return features.to_string();
}

// Users of the feature tests: juliet/r0m30.
sasl::server_options juliet_options() {
    sasl::server_options o;
    o.scram_lookup = [](std::string user, std::string hash) -> asio::awaitable<std::optional<sasl::scram_secret>> {
        if (user != "juliet") co_return std::nullopt;
        error_code ec;
        co_return sasl::make_scram_secret(hash, "r0m30", "0123456789abcdef", 4096, ec);
    };
    o.plain_check = [](std::string user, std::string pass, std::string) -> asio::awaitable<bool> {
        co_return user == "juliet" && pass == "r0m30";
    };
    return o;
}

const std::string sasl_ns_attr = " xmlns='urn:ietf:params:xml:ns:xmpp-sasl'";
std::string failure_of(std::string_view condition, std::string_view text = {}) {
    std::string s = "<failure" + sasl_ns_attr + "><" + std::string(condition) + "/>";
    if (!text.empty()) s += "<text xml:lang='en'>" + std::string(text) + "</text>";
    return s + "</failure>";
}

} // namespace

TEST_CASE("SASL feature: what list() offers on each state") {
    asio::io_context io;
    auto all = juliet_options();
    all.allow_anonymous = true;
    SECTION("TLS 1.3 with binding data: -PLUS first, XEP-0440 beside <mechanisms/>") {
        auto f = xmpp::sasl_server_feature(all, true);
        peer_stream s(io.get_executor(), true, 0x0304);
        bool required = false;
        const auto text = list(*f, s, &required);
        CHECK(required);
        CHECK(text ==
              "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
              "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
              "<mechanism>SCRAM-SHA-512-PLUS</mechanism><mechanism>SCRAM-SHA-256-PLUS</mechanism>"
              "<mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>SCRAM-SHA-512</mechanism>"
              "<mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>"
              "<mechanism>PLAIN</mechanism><mechanism>ANONYMOUS</mechanism></mechanisms>"
              "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>"
              "<channel-binding type='tls-exporter'/><channel-binding type='tls-server-end-point'/>"
              "</sasl-channel-binding></stream:features>");
    }
    SECTION("TLS 1.2: tls-unique too; scram_hashes orders and filters") {
        auto o = all;
        o.scram_hashes = {"SHA-256", "MD5", "SHA-256", "SHA-1"};
        o.allow_anonymous = false;
        auto f = xmpp::sasl_server_feature(o, true);
        peer_stream s(io.get_executor(), true, 0x0303);
        const auto text = list(*f, s);
        CHECK(text.find("<mechanism>SCRAM-SHA-256-PLUS</mechanism><mechanism>SCRAM-SHA-1-PLUS</mechanism>"
                        "<mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>"
                        "<mechanism>PLAIN</mechanism></mechanisms>") != std::string::npos);
        CHECK(text.find("<channel-binding type='tls-unique'/>") != std::string::npos);
        CHECK(text.find("SHA-512") == std::string::npos);
    }
    SECTION("TLS without binding data: no -PLUS, no XEP-0440") {
        auto f = xmpp::sasl_server_feature(all, true);
        peer_stream s(io.get_executor(), true, 0x0304, {});
        const auto text = list(*f, s);
        CHECK(text.find("-PLUS") == std::string::npos);
        CHECK(text.find("sasl-channel-binding") == std::string::npos);
        CHECK(text.find("<mechanism>PLAIN</mechanism>") != std::string::npos);
    }
    SECTION("no TLS, not required: no PLAIN, no -PLUS") {
        auto f = xmpp::sasl_server_feature(all, false);
        peer_stream s(io.get_executor(), false, 0, {});
        const auto text = list(*f, s);
        CHECK(text.find("PLAIN") == std::string::npos);
        CHECK(text.find("<mechanism>SCRAM-SHA-1</mechanism>") != std::string::npos);
        CHECK(text.find("<mechanism>ANONYMOUS</mechanism>") != std::string::npos);
        CHECK(f->necessary() == xmpp::session_state::none);
    }
    SECTION("no TLS, required: nothing at all") {
        auto f = xmpp::sasl_server_feature(all, true);
        peer_stream s(io.get_executor(), false, 0, {});
        bool required = true;
        CHECK(list(*f, s, &required) == "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>");
        CHECK_FALSE(required);
        CHECK(f->necessary() == xmpp::session_state::secure);
        CHECK(f->prohibited() == xmpp::session_state::authenticated);
    }
    SECTION("SCRAM only with scram_lookup, PLAIN only with a checker") {
        sasl::server_options o;
        o.sasldb_path = "/nonexistent";
        auto f = xmpp::sasl_server_feature(o, true);
        peer_stream s(io.get_executor(), true);
        const auto text = list(*f, s);
        CHECK(text.find("SCRAM") == std::string::npos);
        CHECK(text.find("sasl-channel-binding") == std::string::npos);
        CHECK(text.find("<mechanism>PLAIN</mechanism>") != std::string::npos);
        auto none = xmpp::sasl_server_feature(sasl::server_options{}, true);
        CHECK(list(*none, s) == "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>");
    }
    SECTION("starts_with: <auth/> in the SASL namespace only") {
        auto f = xmpp::sasl_server_feature(all, true);
        CHECK(f->starts_with(el("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/>").root()));
        CHECK_FALSE(f->starts_with(el("<auth xmlns='jabber:iq:auth'/>").root()));
        CHECK_FALSE(f->starts_with(el("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>").root()));
    }
}

TEST_CASE("SASL feature: our client machine logs in with SCRAM-PLUS, SCRAM, PLAIN and ANONYMOUS") {
    asio::io_context io;
    auto o = juliet_options();
    o.allow_anonymous = true;
    auto f = xmpp::sasl_server_feature(o, true);
    for (std::string mech : {"SCRAM-SHA-512-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "ANONYMOUS"}) {
        CAPTURE(mech);
        peer_stream s(io.get_executor(), true, 0x0304);
        error_code ec;
        sasl::scram_config cc;
        cc.binding_type = "tls-server-end-point";
        std::unique_ptr<sasl::mechanism> m;
        if (mech == "PLAIN") m = sasl::make_cyrus("PLAIN", {"juliet", "r0m30", ""}, client_tls(0x0304), "example.org", ec);
        else if (mech == "ANONYMOUS") m = sasl::make_anonymous();
        else m = sasl::make_scram(mech, {"juliet", "r0m30", ""}, client_tls(0x0304), cc, ec);
        REQUIRE(m);
        s.clients.push_back(std::move(m));
        auto r = negotiate(*f, s);
        REQUIRE(r.ok);
        CHECK(r.result.gained == xmpp::session_state::authenticated);
        CHECK(r.result.restart);
        CHECK(s.client_done); // for SCRAM: the client verified v= in <success/>
        CHECK(s.mechanism == mech);
        REQUIRE_FALSE(s.sent.empty());
        if (mech.starts_with("SCRAM")) {
            CHECK(s.sent.back().starts_with("<success" + sasl_ns_attr + ">"));
            CHECK(s.sent.size() == 2); // one challenge (server-first), then success
        } else {
            CHECK(s.sent.back() == "<success" + sasl_ns_attr + "/>");
        }
        if (mech == "ANONYMOUS") {
            CHECK(s.peer_address().localpart().starts_with("anon-"));
            CHECK(s.peer_address().domainpart() == "example.org");
        } else {
            CHECK(s.peer_address() == xmpp::jid::parse("juliet@example.org"));
        }
    }
}

TEST_CASE("SASL feature: failures, retries and the end of the attempts") {
    asio::io_context io;
    auto o = juliet_options();
    o.max_attempts = 3;
    auto f = xmpp::sasl_server_feature(o, true);
    auto client = [](std::string pass) {
        error_code ec;
        auto m = sasl::make_scram("SCRAM-SHA-256", {"juliet", pass, ""}, {}, ec);
        REQUIRE(m);
        return m;
    };

    SECTION("a wrong password, then the right one") {
        peer_stream s(io.get_executor(), true);
        s.clients.push_back(client("wrong"));
        s.clients.push_back(client("r0m30"));
        auto r = negotiate(*f, s);
        REQUIRE(r.ok);
        CHECK(std::count(s.sent.begin(), s.sent.end(), failure_of("not-authorized", "invalid-proof")) == 1);
        REQUIRE(s.client_errors.size() == 1);
        CHECK(s.client_errors[0] == errc::not_authorized);
        CHECK(s.peer_address() == xmpp::jid::parse("juliet@example.org"));
    }
    SECTION("max_attempts failures end the feature with the last condition") {
        peer_stream s(io.get_executor(), true);
        for (int i = 0; i < 5; ++i) s.clients.push_back(client("wrong"));
        auto r = negotiate(*f, s);
        CHECK_FALSE(r.ok);
        CHECK(r.ec == errc::not_authorized);
        CHECK(std::count(s.sent.begin(), s.sent.end(), failure_of("not-authorized", "invalid-proof")) == 3);
        CHECK(s.clients.size() == 1); // the 4th <auth/> was queued, never read
        CHECK(s.peer_address().empty());
    }
    SECTION("an unknown mechanism, then one that is offered") {
        peer_stream s(io.get_executor(), true);
        s.clients.push_back(client("r0m30"));
        auto r = negotiate(*f, s, "<auth" + sasl_ns_attr + " mechanism='DIGEST-MD5'/>");
        REQUIRE(r.ok);
        REQUIRE(s.sent.size() == 3); // failure, challenge, success
        CHECK(s.sent[0] == failure_of("invalid-mechanism"));
        CHECK(s.client_done);
    }
    SECTION("raw client elements") {
        struct raw_case {
            std::string name;
            std::vector<std::string> elements; // the <auth/>, then the replies
            std::string failure;               // the first <failure/> sent
        };
        const std::string b64_first = xmpp::detail::base64_encode("n,,n=juliet,r=abc");
        for (const auto& c : {
                 raw_case{"bad base64", {"<auth" + sasl_ns_attr + " mechanism='SCRAM-SHA-1'>bi!sbj1q</auth>"},
                          failure_of("incorrect-encoding")},
                 raw_case{"non-canonical base64", {"<auth" + sasl_ns_attr + " mechanism='SCRAM-SHA-1'>bg==x</auth>"},
                          failure_of("incorrect-encoding")},
                 raw_case{"oversize",
                          {"<auth" + sasl_ns_attr + " mechanism='SCRAM-SHA-1'>" +
                           xmpp::detail::base64_encode(std::string(5000, 'a')) + "</auth>"},
                          failure_of("malformed-request", "message too long")},
                 raw_case{"abort",
                          {"<auth" + sasl_ns_attr + " mechanism='SCRAM-SHA-1'>" + b64_first + "</auth>",
                           "<abort" + sasl_ns_attr + "/>"},
                          failure_of("aborted")},
                 raw_case{"bad base64 in a response",
                          {"<auth" + sasl_ns_attr + " mechanism='SCRAM-SHA-1'>" + b64_first + "</auth>",
                           "<response" + sasl_ns_attr + ">***</response>"},
                          failure_of("incorrect-encoding")},
                 raw_case{"PLAIN is not offered here (no TLS)",
                          {"<auth" + sasl_ns_attr + " mechanism='PLAIN'>AGp1bGlldAByMG0zMA==</auth>"},
                          failure_of("encryption-required")},
                 raw_case{"SCRAM malformed", {"<auth" + sasl_ns_attr + " mechanism='SCRAM-SHA-1'>eA==</auth>"},
                          failure_of("malformed-request", "invalid-encoding")},
             }) {
            CAPTURE(c.name);
            auto nf = xmpp::sasl_server_feature(o, false); // no TLS needed, so PLAIN is refused by state
            peer_stream s(io.get_executor(), false, 0, {});
            for (std::size_t i = 1; i < c.elements.size(); ++i) s.inbox.push_back(c.elements[i]);
            auto r = negotiate(*nf, s, c.elements[0]);
            CHECK(r.script_ended); // waiting for the retry
            REQUIRE_FALSE(s.sent.empty());
            CHECK(s.sent.back() == c.failure);
        }
    }
    SECTION("an empty <auth/> gets an empty challenge; '=' is an empty initial response") {
        auto nf = xmpp::sasl_server_feature(o, false);
        peer_stream s(io.get_executor(), false, 0, {});
        auto r = negotiate(*nf, s, "<auth" + sasl_ns_attr + " mechanism='SCRAM-SHA-1'/>");
        CHECK(r.script_ended);
        CHECK(s.sent == std::vector<std::string>{"<challenge" + sasl_ns_attr + ">=</challenge>"});
        auto all = o;
        all.allow_anonymous = true;
        auto af = xmpp::sasl_server_feature(all, false);
        peer_stream s2(io.get_executor(), false, 0, {});
        auto r2 = negotiate(*af, s2, "<auth" + sasl_ns_attr + " mechanism='ANONYMOUS'>=</auth>");
        CHECK(r2.ok);
        CHECK(s2.sent == std::vector<std::string>{"<success" + sasl_ns_attr + "/>"});
    }
    SECTION("something else than <response/> or <abort/> during the exchange") {
        auto nf = xmpp::sasl_server_feature(o, false);
        peer_stream s(io.get_executor(), false, 0, {});
        s.inbox.push_back("<message to='x@example.org'/>");
        auto r = negotiate(*nf, s, "<auth" + sasl_ns_attr + " mechanism='SCRAM-SHA-1'/>");
        CHECK(r.ec == xmpp::errc::unexpected_element);
    }
    SECTION("something else than <auth/> after a failure") {
        peer_stream s(io.get_executor(), true);
        s.inbox.push_back("<message to='x@example.org'/>");
        auto r = negotiate(*f, s, "<auth" + sasl_ns_attr + " mechanism='DIGEST-MD5'/>");
        CHECK(r.ec == xmpp::errc::unexpected_element);
        CHECK(s.sent == std::vector<std::string>{failure_of("invalid-mechanism")});
    }
}

TEST_CASE("SASL feature: authorization identities (RFC 6120 6.3.8)") {
    asio::io_context io;
    auto login = [&](sasl::server_options o, std::string authzid, std::string* failure) {
        auto f = xmpp::sasl_server_feature(std::move(o), true);
        peer_stream s(io.get_executor(), true);
        error_code ec;
        s.clients.push_back(sasl::make_scram("SCRAM-SHA-256", {"juliet", "r0m30", authzid}, {}, ec));
        auto r = negotiate(*f, s);
        if (failure && !s.sent.empty()) *failure = s.sent.back();
        return r.ok ? std::string(s.peer_address().str()) : std::string();
    };
    std::string fail;
    CHECK(login(juliet_options(), "", &fail) == "juliet@example.org");
    CHECK(login(juliet_options(), "juliet@example.org", &fail) == "juliet@example.org");
    CHECK(login(juliet_options(), "Juliet@Example.org", &fail) == "juliet@example.org");
    CHECK(login(juliet_options(), "romeo@example.org", &fail).empty());
    CHECK(fail == failure_of("invalid-authzid"));
    CHECK(login(juliet_options(), "juliet@example.org/balcony", &fail).empty());
    CHECK(fail == failure_of("invalid-authzid"));
    CHECK(login(juliet_options(), "example.org", &fail).empty());
    CHECK(fail == failure_of("invalid-authzid"));

    auto admin = juliet_options();
    std::vector<std::string> asked;
    admin.authorize = [&](const sasl::server_identity& who, std::string_view domain) {
        asked.push_back(who.username + " as " + who.authzid + " on " + std::string(domain));
        return who.authzid == "romeo@example.org";
    };
    CHECK(login(admin, "romeo@example.org", &fail) == "romeo@example.org");
    CHECK(login(admin, "mercutio@example.org", &fail).empty());
    CHECK(login(admin, "", &fail) == "juliet@example.org"); // not asked without an authzid
    CHECK(asked == std::vector<std::string>{"juliet as romeo@example.org on example.org",
                                            "juliet as mercutio@example.org on example.org"});
}

TEST_CASE("SASL feature: the lookups' failures and the sasldb path") {
    asio::io_context io;
    SECTION("a throwing scram_lookup is temporary-auth-failure") {
        sasl::server_options o;
        o.scram_lookup = [](std::string, std::string) -> asio::awaitable<std::optional<sasl::scram_secret>> {
            throw std::runtime_error("database down");
            co_return std::nullopt;
        };
        auto f = xmpp::sasl_server_feature(o, true);
        peer_stream s(io.get_executor(), true);
        error_code ec;
        s.clients.push_back(sasl::make_scram("SCRAM-SHA-1", {"juliet", "x", ""}, {}, ec));
        auto r = negotiate(*f, s);
        CHECK(r.script_ended);
        CHECK(s.sent.back() == failure_of("temporary-auth-failure"));
    }
    SECTION("PLAIN via Cyrus: an unreadable sasldb is temporary-auth-failure") {
        sasl::server_options o;
        o.sasldb_path = "/nonexistent/sasldb2";
        o.max_attempts = 1;
        auto f = xmpp::sasl_server_feature(o, true);
        peer_stream s(io.get_executor(), true);
        auto r = negotiate(*f, s, "<auth" + sasl_ns_attr + " mechanism='PLAIN'>AGp1bGlldAByMG0zMA==</auth>");
        CHECK(r.ec == errc::temporary_auth_failure);
        CHECK(s.sent.back() == failure_of("temporary-auth-failure"));
    }
}
