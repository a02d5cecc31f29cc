// Tests of lib/src/sasl/select.cpp: which mechanism is chosen, in which
// order, and which GS2 flag a SCRAM choice sends.
#include "test_catch.hpp"

#include <xmpp/sasl.hpp>

#include <algorithm>
#include <climits>
#include <map>

namespace sasl = xmpp::sasl;
using sasl::errc;
using boost::system::error_code;
using names = std::vector<std::string>;

namespace {

const sasl::credentials creds{"juliet", "r0m30", ""};
const std::vector<std::uint8_t> cb(32, 0x42);

sasl::tls_state tls(int version, std::map<std::string, std::vector<std::uint8_t>> data,
                    names advertised = {}) {
    sasl::tls_state t;
    t.secure = version != 0;
    t.peer_verified = t.secure;
    t.tls_version = version;
    t.binding = [data = std::move(data)](std::string_view type) {
        auto it = data.find(std::string(type));
        return it == data.end() ? std::vector<std::uint8_t>{} : it->second;
    };
    t.server_binding_types = std::move(advertised);
    return t;
}

const auto tls13 = tls(0x0304, {{"tls-exporter", cb}, {"tls-server-end-point", cb}});
const auto tls12 = tls(0x0303, {{"tls-exporter", cb}, {"tls-server-end-point", cb}, {"tls-unique", cb}});
const auto plain_tcp = tls(0, {});

const names all_scram{"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS",
                      "SCRAM-SHA-512", "SCRAM-SHA-512-PLUS", "PLAIN"};

struct choice {
    std::string name;
    std::string first; // initial response, "" when failed
    error_code ec;
};

choice pick(const names& offered, const sasl::tls_state& t, const sasl::options& o = {},
            const sasl::credentials& c = creds) {
    choice r;
    auto m = sasl::select(offered, c, t, o, "example.org", r.ec);
    if (!m) return r;
    r.name = std::string(m->name());
    error_code ec;
    auto f = m->initial_response(ec);
    if (f) r.first = *f;
    return r;
}

bool cyrus_has(std::string_view n) {
    const auto m = sasl::cyrus_mechanisms();
    return std::find(m.begin(), m.end(), n) != m.end();
}

} // namespace

TEST_CASE("select: TLS 1.3 uses -PLUS only with an advertised binding type (XEP-0440)") {
    SECTION("tls-exporter advertised") {
        auto t = tls13;
        t.server_binding_types = {"tls-exporter"};
        auto r = pick(all_scram, t);
        CHECK(r.name == "SCRAM-SHA-512-PLUS");
        CHECK(r.first.starts_with("p=tls-exporter,,n=juliet,r="));
    }
    SECTION("only tls-server-end-point advertised") {
        auto t = tls13;
        t.server_binding_types = {"tls-server-end-point"};
        auto r = pick(all_scram, t);
        CHECK(r.name == "SCRAM-SHA-512-PLUS");
        CHECK(r.first.starts_with("p=tls-server-end-point,,"));
    }
    SECTION("only tls-unique advertised: unusable under TLS 1.3") {
        auto t = tls13;
        t.server_binding_types = {"tls-unique"};
        auto r = pick(all_scram, t);
        CHECK(r.name == "SCRAM-SHA-512");
        CHECK(r.first.starts_with("n,,"));
    }
    SECTION("nothing advertised, -PLUS offered (ejabberd): plain SCRAM with 'n'") {
        auto r = pick(all_scram, tls13);
        CHECK(r.name == "SCRAM-SHA-512");
        CHECK(r.first.starts_with("n,,"));
    }
    SECTION("nothing advertised, no -PLUS offered: 'y' (downgrade protection)") {
        auto r = pick({"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"}, tls13);
        CHECK(r.name == "SCRAM-SHA-256");
        CHECK(r.first.starts_with("y,,n=juliet,"));
    }
    SECTION("advertised but no binding data for it") {
        auto t = tls(0x0304, {{"tls-server-end-point", cb}}, {"tls-exporter"});
        auto r = pick(all_scram, t);
        CHECK(r.name == "SCRAM-SHA-512");
        CHECK(r.first.starts_with("n,,"));
    }
}

TEST_CASE("select: TLS 1.2 uses an advertised type, else tls-unique") {
    SECTION("nothing advertised (Prosody 0.12): tls-unique") {
        auto r = pick({"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "PLAIN"}, tls12);
        CHECK(r.name == "SCRAM-SHA-1-PLUS");
        CHECK(r.first.starts_with("p=tls-unique,,"));
    }
    SECTION("tls-exporter advertised") {
        auto t = tls12;
        t.server_binding_types = {"tls-unique", "tls-exporter"};
        auto r = pick(all_scram, t);
        CHECK(r.name == "SCRAM-SHA-512-PLUS");
        CHECK(r.first.starts_with("p=tls-exporter,,"));
    }
    SECTION("only tls-server-end-point advertised") {
        auto t = tls12;
        t.server_binding_types = {"tls-server-end-point"};
        auto r = pick(all_scram, t);
        CHECK(r.first.starts_with("p=tls-server-end-point,,"));
    }
    SECTION("advertised types we cannot serve: no -PLUS, and 'n' since the server binds") {
        auto t = tls(0x0303, {{"tls-unique", cb}}, {"tls-server-end-point"});
        auto r = pick(all_scram, t);
        CHECK(r.name == "SCRAM-SHA-512");
        CHECK(r.first.starts_with("n,,"));
    }
    SECTION("no tls-unique data") {
        auto t = tls(0x0303, {{"tls-exporter", cb}});
        auto r = pick({"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"}, t);
        CHECK(r.name == "SCRAM-SHA-1");
        CHECK(r.first.starts_with("n,,"));
    }
    SECTION("no -PLUS offered, tls-unique available: 'y'") {
        auto r = pick({"SCRAM-SHA-1"}, tls12);
        CHECK(r.first.starts_with("y,,"));
    }
}

TEST_CASE("select: an insecure stream gets no PLAIN and no binding") {
    auto r = pick(all_scram, plain_tcp);
    CHECK(r.name == "SCRAM-SHA-512");
    CHECK(r.first.starts_with("n,,"));
    CHECK(sasl::candidates(all_scram, creds, plain_tcp, {}) ==
          names{"SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"});

    auto only_plain = pick({"PLAIN"}, plain_tcp);
    CHECK(only_plain.ec == errc::no_acceptable_mechanism);
    CHECK(only_plain.name.empty());

    // No option brings PLAIN back without TLS: asking for it by name, even
    // alone, even with a stream that claims a verified peer.
    sasl::options o;
    o.mechanisms = {"PLAIN"};
    CHECK(pick({"PLAIN", "SCRAM-SHA-1"}, plain_tcp, o).ec == errc::no_acceptable_mechanism);
    auto claims = plain_tcp;
    claims.peer_verified = true;
    CHECK(pick({"PLAIN"}, claims, o).ec == errc::no_acceptable_mechanism);
    CHECK(sasl::candidates(names{"PLAIN"}, creds, claims, o).empty());
    // On TLS with a verified peer the same request gets PLAIN.
    auto allowed = pick({"PLAIN", "SCRAM-SHA-1"}, tls13, o);
    CHECK(allowed.name == "PLAIN");
    CHECK(allowed.first == std::string("\0juliet\0r0m30", 13));
}

TEST_CASE("select: no PLAIN to a TLS peer whose certificate was not verified") {
    // insecure_skip_verify: the stream is encrypted, but to anyone; PLAIN
    // would hand them the password. SCRAM proves knowledge without it.
    auto unverified = tls13;
    unverified.peer_verified = false;
    CHECK(sasl::candidates(all_scram, creds, unverified, {}) ==
          names{"SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"});
    CHECK(pick(all_scram, unverified).name == "SCRAM-SHA-512");
    CHECK(pick({"PLAIN"}, unverified).ec == errc::no_acceptable_mechanism);
    sasl::options o;
    o.mechanisms = {"PLAIN", "SCRAM-SHA-256"};
    CHECK(pick(all_scram, unverified, o).name == "SCRAM-SHA-256");
    CHECK(pick(all_scram, tls13, o).name == "PLAIN"); // the same, verified
    // -PLUS too stays available: binding does not need the peer verified.
    auto u12 = tls12;
    u12.peer_verified = false;
    CHECK(pick({"SCRAM-SHA-1-PLUS", "PLAIN"}, u12).name == "SCRAM-SHA-1-PLUS");
}

TEST_CASE("select: ANONYMOUS is native and sends an empty trace (RFC 4505)") {
    sasl::options anon;
    anon.allow_anonymous = true;
    for (const auto& t : {plain_tcp, tls13}) {
        error_code ec;
        auto m = sasl::select(names{"ANONYMOUS"}, {"", "", ""}, t, anon, "example.org", ec);
        REQUIRE(m);
        CHECK_FALSE(ec);
        CHECK(m->name() == "ANONYMOUS");
        auto first = m->initial_response(ec);
        REQUIRE(first); // an initial response, zero-length: "=" on the wire
        CHECK(first->empty());
        m->finish("", ec);
        CHECK_FALSE(ec);
        CHECK(m->finished());
    }
    // Only when asked for.
    CHECK(pick({"ANONYMOUS"}, tls13, {}, {"", "", ""}).ec == errc::no_acceptable_mechanism);
}

TEST_CASE("select: default order, strongest first") {
    names offered{"PLAIN", "ANONYMOUS", "EXTERNAL", "GSSAPI", "DIGEST-MD5", "CRAM-MD5"};
    offered.insert(offered.end(), all_scram.begin(), all_scram.end());
    auto t = tls13;
    t.server_binding_types = {"tls-exporter"};
    names expected{"SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS",
                   "SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"};
    if (cyrus_has("GSSAPI")) expected.push_back("GSSAPI");
    expected.push_back("PLAIN");
    CHECK(sasl::candidates(offered, creds, t, {}) == expected);

    sasl::options o;
    o.use_external = true;
    o.allow_anonymous = true;
    auto with_all = sasl::candidates(offered, creds, t, o);
    REQUIRE(with_all.size() == expected.size() + 2);
    CHECK(with_all.front() == "EXTERNAL");
    CHECK(with_all.back() == "ANONYMOUS");
    CHECK(pick(offered, t, o).name == "EXTERNAL");
}

TEST_CASE("select: options.mechanisms restricts and orders") {
    sasl::options o;
    o.mechanisms = {"SCRAM-SHA-1", "SCRAM-SHA-256"};
    auto r = pick(all_scram, tls13, o);
    CHECK(r.name == "SCRAM-SHA-1");
    CHECK(r.first.starts_with("n,,")); // the server offers -PLUS: no 'y'
    CHECK(sasl::candidates(all_scram, creds, tls13, o) == names{"SCRAM-SHA-1", "SCRAM-SHA-256"});

    o.mechanisms = {"PLAIN", "SCRAM-SHA-256"};
    CHECK(pick(all_scram, tls13, o).name == "PLAIN");
    // The rules still apply: PLAIN is skipped on an insecure stream.
    CHECK(pick(all_scram, plain_tcp, o).name == "SCRAM-SHA-256");

    o.mechanisms = {"SCRAM-SHA-256-PLUS", "X-UNKNOWN", "SCRAM-SHA-256-PLUS"};
    auto t = tls13;
    t.server_binding_types = {"tls-exporter"};
    CHECK(sasl::candidates(all_scram, creds, t, o) == names{"SCRAM-SHA-256-PLUS"});
    CHECK(pick(all_scram, tls13, o).ec == errc::no_acceptable_mechanism); // not advertised

    o.mechanisms = {"DIGEST-MD5"};
    CHECK(pick({"DIGEST-MD5", "SCRAM-SHA-1"}, tls13, o).ec == errc::no_acceptable_mechanism);
}

TEST_CASE("select: unknown names are ignored") {
    CHECK(pick({"X-OAUTH2", "DIGEST-MD5", "CRAM-MD5", "LOGIN", "SCRAM-SHA-1", "scram-sha-256"}, tls13).name ==
          "SCRAM-SHA-1");
    for (const names& n : {names{}, names{"X-OAUTH2", "DIGEST-MD5", "NTLM", "scram-sha-1", ""}}) {
        auto r = pick(n, tls13);
        CHECK(r.ec == errc::no_acceptable_mechanism);
        CHECK(r.name.empty());
    }
}

TEST_CASE("select: EXTERNAL, ANONYMOUS and GSSAPI need to be wanted and present") {
    CHECK(pick({"EXTERNAL"}, tls13).ec == errc::no_acceptable_mechanism);
    sasl::options ext;
    ext.use_external = true;
    auto e = pick({"EXTERNAL", "SCRAM-SHA-1"}, tls13, ext);
    CHECK(e.name == "EXTERNAL");
    CHECK(e.first.empty());

    CHECK(pick({"ANONYMOUS"}, tls13).ec == errc::no_acceptable_mechanism);
    sasl::options anon;
    anon.allow_anonymous = true;
    CHECK(pick({"ANONYMOUS", "SCRAM-SHA-1"}, tls13, anon).name == "SCRAM-SHA-1");
    // Without a username only the mechanisms that need none remain.
    CHECK(pick({"ANONYMOUS", "SCRAM-SHA-1", "PLAIN"}, tls13, anon, {"", "", ""}).name == "ANONYMOUS");
    CHECK(pick({"SCRAM-SHA-1", "PLAIN"}, tls13, {}, {"", "x", ""}).ec == errc::no_acceptable_mechanism);

    auto g = pick({"GSSAPI", "PLAIN"}, tls13);
    CHECK(g.name == (cyrus_has("GSSAPI") ? "GSSAPI" : "PLAIN"));
}

TEST_CASE("select: credentials SASLprep refuses stop the choice") {
    // Falling back to PLAIN would send what SCRAM refused to prepare.
    auto r = pick({"SCRAM-SHA-1", "PLAIN"}, tls13, {}, {"juliet", "bad\x07", ""});
    CHECK(r.ec == errc::invalid_credentials);
    CHECK(r.name.empty());
}

TEST_CASE("select: unusable iteration bounds are a configuration error, whatever is offered") {
    for (auto [lo, hi] : {std::pair<std::uint32_t, std::uint32_t>{4096, std::uint32_t(INT_MAX) + 1u},
                          {4096, UINT32_MAX}, {5000, 4096}}) {
        CAPTURE(lo, hi);
        sasl::options o;
        o.min_iterations = lo;
        o.max_iterations = hi;
        // Not no_acceptable_mechanism, and no fallback to PLAIN.
        for (const names& offered : {names{"SCRAM-SHA-256", "PLAIN"}, names{"PLAIN"}}) {
            auto r = pick(offered, tls13, o);
            CHECK(r.ec == errc::invalid_configuration);
            CHECK(r.name.empty());
        }
    }
    sasl::options edge;
    edge.min_iterations = edge.max_iterations = INT_MAX;
    CHECK(pick({"SCRAM-SHA-256"}, tls13, edge).name == "SCRAM-SHA-256");
}

TEST_CASE("select: iteration bounds reach SCRAM") {
    sasl::options o;
    o.min_iterations = 10000;
    error_code ec;
    auto m = sasl::select(names{"SCRAM-SHA-1"}, creds, plain_tcp, o, "example.org", ec);
    REQUIRE(m);
    auto f = m->initial_response(ec);
    REQUIRE(f);
    const std::string nonce = f->substr(f->find(",r=") + 3);
    m->respond("r=" + nonce + "x,s=QSXCR+Q6sek8bf92,i=4096", ec);
    CHECK(ec == errc::iteration_count_out_of_range);
}
