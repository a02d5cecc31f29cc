// Scripted exchanges for the sans-io feature machines: the happy path of
// each, then a failure injected at every step.
#include "test_catch.hpp"

#include "detail/base64.hpp"
#include "negotiation/machines.hpp"

#include <xmpp/error.hpp>
#include <xmpp/sasl.hpp>
#include <xmpp/stanza_error.hpp>
#include <xmpp/stream_error.hpp>
#include <xmpp/xml/reader.hpp>

#include <functional>

using namespace xmpp;
using detail::step;
using next = step::next_t;

namespace {

// An element as the session would hand it over: parsed in the context of a
// jabber:client stream.
xml::element el(std::string_view text) {
    xml::stream_header ctx;
    ctx.default_ns = "jabber:client";
    ctx.prefixes = {{"stream", std::string(xml::ns::stream)}};
    boost::system::error_code ec;
    auto e = xml::parse_element(text, ec, ctx);
    REQUIRE_FALSE(ec);
    return e;
}

// A two-step mechanism: initial response "hello", one challenge "c1" ->
// "r1", then success data "ok" verifies the server.
class scripted_mechanism final : public sasl::mechanism {
public:
    std::string_view name() const noexcept override { return "X-TEST"; }
    std::optional<std::string> initial_response(boost::system::error_code&) override { return initial_; }
    std::string respond(std::string_view challenge, boost::system::error_code& ec) override {
        if (challenge != "c1") ec = make_error_code(sasl::errc::bad_server_message);
        answered_ = true;
        return "r1";
    }
    void finish(std::string_view data, boost::system::error_code& ec) override {
        if (!answered_) ec = make_error_code(sasl::errc::unexpected_success);
        else if (data != "ok") ec = make_error_code(sasl::errc::bad_server_signature);
        else finished_ = true;
    }
    bool finished() const noexcept override { return finished_; }

    std::optional<std::string> initial_ = std::string("hello");
    bool answered_ = false;
    bool finished_ = false;
};

const std::string sasl_ns = "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'";

std::string b64(std::string_view s) { return detail::base64_encode(s); }

} // namespace

TEST_CASE("base64 is strict (RFC 4648 4, RFC 6120 6.4.2)") {
    CHECK(detail::base64_encode("") == "");
    CHECK(detail::base64_encode("f") == "Zg==");
    CHECK(detail::base64_encode("fo") == "Zm8=");
    CHECK(detail::base64_encode("foobar") == "Zm9vYmFy");
    CHECK(detail::base64_decode("Zm9vYg==") == std::optional<std::string>("foob"));
    CHECK(detail::base64_decode("Zm9vYmE=") == std::optional<std::string>("fooba"));
    for (auto bad : {"Zg", "Zg=", "Zm9v YmFy", "Zm9v\nYmFy", "Zh==", "Zm9=", "Z===", "====", "Zm9vYmFy=", "Zm=v", "Zm9!"})
        CHECK_FALSE(detail::base64_decode(bad));
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    CHECK(detail::base64_decode(detail::base64_encode(all)) == std::optional<std::string>(all));
}

TEST_CASE("STARTTLS machine (RFC 6120 5.4.2)") {
    detail::starttls_machine m;
    auto s = m.start();
    CHECK(s.next == next::receive);
    CHECK(s.out == "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");

    SECTION("proceed -> TLS") {
        auto r = m.on_element(el("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").root());
        CHECK(r.next == next::upgrade_tls);
    }
    SECTION("failure -> starttls_failed") {
        auto r = m.on_element(el("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").root());
        CHECK(r.next == next::fail);
        CHECK(r.ec == errc::starttls_failed);
    }
    SECTION("proceed in the wrong namespace -> unexpected element") {
        auto r = m.on_element(el("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>").root());
        CHECK(r.next == next::fail);
        CHECK(r.ec == errc::unexpected_element);
    }
    SECTION("a stanza -> unexpected element") {
        auto r = m.on_element(el("<message/>").root());
        CHECK(r.ec == errc::unexpected_element);
        CHECK(r.text.find("<message") != std::string::npos);
    }
}

TEST_CASE("SASL machine: the scripted exchange") {
    auto mech = std::make_unique<scripted_mechanism>();
    auto* raw = mech.get();
    detail::sasl_machine m(std::move(mech));
    auto s = m.start();
    REQUIRE(s.next == next::receive);
    CHECK(s.out == "<auth " + sasl_ns + " mechanism='X-TEST'>" + b64("hello") + "</auth>");

    auto c = m.on_element(el("<challenge " + sasl_ns + ">" + b64("c1") + "</challenge>").root());
    REQUIRE(c.next == next::receive);
    CHECK(c.out == "<response " + sasl_ns + ">" + b64("r1") + "</response>");

    auto d = m.on_element(el("<success " + sasl_ns + ">" + b64("ok") + "</success>").root());
    CHECK(d.next == next::done);
    CHECK(raw->finished());
}

TEST_CASE("SASL machine: initial response forms (RFC 6120 6.4.2)") {
    SECTION("none") {
        auto mech = std::make_unique<scripted_mechanism>();
        mech->initial_ = std::nullopt;
        detail::sasl_machine m(std::move(mech));
        CHECK(m.start().out == "<auth " + sasl_ns + " mechanism='X-TEST'/>");
    }
    SECTION("zero-length is '='") {
        auto mech = std::make_unique<scripted_mechanism>();
        mech->initial_ = std::string();
        detail::sasl_machine m(std::move(mech));
        CHECK(m.start().out == "<auth " + sasl_ns + " mechanism='X-TEST'>=</auth>");
    }
}

TEST_CASE("SASL machine: a failure injected at every step") {
    // The exchange has two server turns: the challenge and the success.
    // At each turn, replace the server's element by each bad alternative.
    const std::vector<std::string> good = {
        "<challenge " + sasl_ns + ">" + b64("c1") + "</challenge>",
        "<success " + sasl_ns + ">" + b64("ok") + "</success>",
    };
    struct injection {
        std::string element;
        boost::system::error_code expect;
        bool sends_abort;
        std::string text_has;
    };
    const std::vector<injection> bad = {
        {"<failure " + sasl_ns + "><not-authorized/><text>wrong password</text></failure>",
         sasl::errc::not_authorized, false, "wrong password"},
        {"<failure " + sasl_ns + "><account-disabled/></failure>", sasl::errc::account_disabled, false, ""},
        {"<failure " + sasl_ns + "><temporary-auth-failure/></failure>", sasl::errc::temporary_auth_failure, false, ""},
        {"<failure " + sasl_ns + "><some-future-condition/></failure>", sasl::errc::not_authorized, false, ""},
        {"<failure " + sasl_ns + "/>", sasl::errc::not_authorized, false, ""},
        {"<challenge " + sasl_ns + ">not base64!</challenge>", sasl::errc::bad_server_message, true, "base64"},
        {"<challenge " + sasl_ns + ">" + b64("c2") + "</challenge>", sasl::errc::bad_server_message, true, ""},
        {"<success " + sasl_ns + ">%%%</success>", sasl::errc::bad_server_message, false, "base64"},
        {"<success " + sasl_ns + ">" + b64("forged") + "</success>", sasl::errc::bad_server_signature, false, ""},
        {"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", errc::unexpected_element, false, "SASL"},
        {"<iq type='result' id='x'/>", errc::unexpected_element, false, ""},
    };
    for (std::size_t turn = 0; turn < good.size(); ++turn) {
        for (const auto& inj : bad) {
            // A challenge after the first turn is valid base64 "c2": the
            // mechanism rejects it. An early success is the mechanism's call.
            auto expect = inj.expect;
            if (turn == 0 && inj.element.find(b64("forged")) != std::string::npos) expect = sasl::errc::unexpected_success;
            if (turn == 0 && inj.element.find("%%%") != std::string::npos) expect = sasl::errc::bad_server_message;
            CAPTURE(turn, inj.element);
            detail::sasl_machine m(std::make_unique<scripted_mechanism>());
            auto s = m.start();
            for (std::size_t k = 0; k < turn; ++k) {
                s = m.on_element(el(good[k]).root());
                REQUIRE(s.next == next::receive);
            }
            auto r = m.on_element(el(inj.element).root());
            CHECK(r.next == next::fail);
            CHECK(r.ec == expect);
            if (inj.sends_abort) CHECK(r.out == "<abort " + sasl_ns + "/>");
            else CHECK(r.out.empty());
            if (!inj.text_has.empty()) CHECK(r.text.find(inj.text_has) != std::string::npos);
        }
    }
}

TEST_CASE("bind machine (RFC 6120 7.6 - 7.7)") {
    SECTION("server-assigned resource") {
        detail::bind_machine m("", "b1");
        auto s = m.start();
        CHECK(s.out == "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
        auto r = m.on_element(el("<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                                 "<jid>alice@example.org/x1</jid></bind></iq>").root());
        CHECK(r.next == next::done);
        CHECK(m.bound().str() == "alice@example.org/x1");
    }
    SECTION("requested resource is escaped") {
        detail::bind_machine m("desk & <home>", "b2");
        CHECK(m.start().out == "<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                               "<resource>desk &amp; &lt;home&gt;</resource></bind></iq>");
    }
    struct injection {
        std::string element;
        boost::system::error_code expect;
    };
    const std::vector<injection> bad = {
        {"<iq type='error' id='b1'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
         stanza_errc::conflict},
        {"<iq type='error' id='b1'><error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
         stanza_errc::not_allowed},
        {"<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.org</jid></bind></iq>",
         errc::bind_failed},
        {"<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>@@</jid></bind></iq>", errc::bind_failed},
        {"<iq type='result' id='b1'/>", errc::bind_failed},
        {"<iq type='result' id='other'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>a@b/c</jid></bind></iq>",
         errc::unexpected_element},
        {"<message id='b1'/>", errc::unexpected_element},
        {"<iq type='get' id='b1'/>", errc::unexpected_element},
    };
    for (const auto& inj : bad) {
        CAPTURE(inj.element);
        detail::bind_machine m("", "b1");
        m.start();
        auto r = m.on_element(el(inj.element).root());
        CHECK(r.next == next::fail);
        CHECK(r.ec == inj.expect);
    }
}

TEST_CASE("SASL offer parsing, with XEP-0440 binding types") {
    auto f = el("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
                "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism>"
                "<mechanism>PLAIN</mechanism><other/></mechanisms>"
                "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/>"
                "<channel-binding type='tls-server-end-point'/></sasl-channel-binding></stream:features>");
    auto o = detail::parse_sasl_offer(f.root().child("mechanisms", detail::sasl_ns), f.root());
    CHECK(o.mechanisms == std::vector<std::string>{"SCRAM-SHA-1", "PLAIN"});
    CHECK(o.binding_types == std::vector<std::string>{"tls-exporter", "tls-server-end-point"});
}

TEST_CASE("stream header checks (RFC 6120 4.7)") {
    xml::stream_header h;
    h.version = "1.0";
    h.default_ns = "jabber:client";
    h.id = "abc";
    std::string text;
    CHECK_FALSE(detail::check_stream_header(h, "jabber:client", text));
    h.version = "2.3";
    CHECK_FALSE(detail::check_stream_header(h, "jabber:client", text));
    for (auto v : {"", "0.9", "x.1", "1", ".5"}) {
        h.version = v;
        CHECK(detail::check_stream_header(h, "jabber:client", text) == stream_errc::unsupported_version);
    }
    h.version = "1.0";
    h.default_ns = "jabber:server";
    CHECK(detail::check_stream_header(h, "jabber:client", text) == stream_errc::invalid_namespace);
}

namespace {
struct fake_feature final : stream_feature {
    fake_feature(std::string n, session_state need, session_state forbid) : n_(std::move(n)), need_(need), forbid_(forbid) {}
    std::string_view name() const noexcept override { return n_; }
    std::string_view ns() const noexcept override { return "urn:test"; }
    session_state necessary() const noexcept override { return need_; }
    session_state prohibited() const noexcept override { return forbid_; }
    parse_result parse(xml::node) const override { return {}; }
    asio::awaitable<negotiate_result> negotiate(negotiation_stream&, std::any&) const override { co_return negotiate_result{}; }
    std::string n_;
    session_state need_, forbid_;
};
} // namespace

TEST_CASE("choosing the next feature by state bits (RFC 6120 4.3.2)") {
    using ss = session_state;
    fake_feature tls("starttls", ss::none, ss::secure);
    fake_feature sasl("mechanisms", ss::secure, ss::authenticated);
    fake_feature bind("bind", ss::authenticated, ss::ready);
    std::vector<detail::offered_feature> offered = {{&tls, {}}, {&sasl, {}}, {&bind, {}}};
    std::vector<bool> req = {false, true, true};
    CHECK(detail::choose_feature(offered, req, ss::none)->feature == &tls);
    CHECK(detail::choose_feature(offered, req, ss::secure)->feature == &sasl);
    CHECK(detail::choose_feature(offered, req, ss::secure | ss::authenticated)->feature == &bind);
    CHECK(detail::choose_feature(offered, req, ss::secure | ss::authenticated | ss::ready) == nullptr);
    // A required feature that fits goes before an optional one listed first.
    fake_feature opt("opt", ss::none, ss::none);
    fake_feature must("must", ss::none, ss::none);
    std::vector<detail::offered_feature> o2 = {{&opt, {}}, {&must, {}}};
    CHECK(detail::choose_feature(o2, {false, true}, ss::none)->feature == &must);
}
