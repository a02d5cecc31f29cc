// Scripted exchanges for the sans-io feature machines: the happy path of
// each, then a failure injected at every step.
#include "test_catch.hpp"
#include "idle_transport.hpp"

#include "detail/base64.hpp"
#include "negotiation/machines.hpp"

#include <xmpp/error.hpp>
#include <xmpp/negotiator.hpp>
#include <xmpp/sasl.hpp>
#include <xmpp/stanza_error.hpp>
#include <xmpp/stream_error.hpp>
#include <xmpp/tls.hpp>
#include <xmpp/xml/reader.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <deque>
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

TEST_CASE("SASL machine: the server's <failure/> <text/> travels in the error_code (RFC 6120 6.5)") {
    auto fail_with = [](const std::string& failure) {
        detail::sasl_machine m(std::make_unique<scripted_mechanism>());
        m.start();
        return m.on_element(el(failure).root());
    };
    SECTION("the text is in ec.message(), the condition still compares equal") {
        auto r = fail_with("<failure " + sasl_ns + "><not-authorized/><text xml:lang='en'>wrong password</text></failure>");
        CHECK(r.ec == sasl::errc::not_authorized);
        CHECK(r.ec.category() == sasl::sasl_category());
        CHECK(r.ec.message() == "the credentials were not accepted: wrong password");
        auto d = fail_with("<failure " + sasl_ns + "><account-disabled/><text>call the admin</text></failure>");
        CHECK(d.ec == sasl::errc::account_disabled);
        CHECK(d.ec.message() == "the account is disabled: call the admin");
    }
    SECTION("no text: the condition's own message") {
        auto r = fail_with("<failure " + sasl_ns + "><temporary-auth-failure/></failure>");
        CHECK(r.ec == sasl::errc::temporary_auth_failure);
        CHECK(r.ec.message() == sasl::make_error_code(sasl::errc::temporary_auth_failure).message());
    }
    SECTION("the text is sanitised and capped") {
        // Control characters XML lets through (TAB, LF, DEL) and non-ASCII
        // become '?'; past 128 bytes the text is cut.
        auto r = fail_with("<failure " + sasl_ns + "><not-authorized/><text>bad&#x9;x&#xA;&#x7f;\xc3\xa9" +
                           std::string(300, 'x') + "</text></failure>");
        CHECK(r.ec == sasl::errc::not_authorized);
        const std::string msg = r.ec.message();
        CHECK(msg.find("bad?x????xxx") != std::string::npos);
        CHECK(msg.find_first_of("\t\n\x7f") == std::string::npos);
        CHECK(msg.size() == std::string("the credentials were not accepted: ").size() + 128);
        CHECK(r.text.size() == 128);
    }
}

TEST_CASE("SASL machine: native ANONYMOUS sends '=' (RFC 6120 6.4.2, RFC 4505)") {
    detail::sasl_machine m(sasl::make_anonymous());
    auto s = m.start();
    CHECK(s.next == next::receive);
    CHECK(s.out == "<auth " + sasl_ns + " mechanism='ANONYMOUS'>=</auth>");
    CHECK(m.on_element(el("<success " + sasl_ns + "/>").root()).next == next::done);
}

TEST_CASE("bind machine (RFC 6120 7.6 - 7.7)") {
    SECTION("server-assigned resource") {
        detail::bind_machine m("", "b1");
        auto s = m.start();
        CHECK(s.out == "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
        auto r = m.on_element(el("<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                                 "<jid>alice@example.org/x1</jid></bind></iq>").root());
        CHECK(r.next == next::done);
        CHECK(m.bound().str() == "alice@example.org/x1");
    }
    SECTION("requested resource is escaped") {
        detail::bind_machine m("desk & <home>", "b2");
        CHECK(m.start().out == "<iq xmlns='jabber:client' type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
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
    asio::awaitable<parse_result> parse(xml::node) const override { co_return parse_result{}; }
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
    CHECK(detail::choose_feature(offered, ss::none)->feature == &tls);
    CHECK(detail::choose_feature(offered, ss::secure)->feature == &sasl);
    CHECK(detail::choose_feature(offered, ss::secure | ss::authenticated)->feature == &bind);
    CHECK(detail::choose_feature(offered, ss::secure | ss::authenticated | ss::ready) == nullptr);
}

TEST_CASE("advertised features are ranked in the negotiator's order, not the document's") {
    using ss = session_state;
    auto tls = std::make_shared<fake_feature>("starttls", ss::none, ss::secure);
    auto sasl = std::make_shared<fake_feature>("mechanisms", ss::none, ss::authenticated); // allow_plaintext
    auto bind = std::make_shared<fake_feature>("bind", ss::authenticated, ss::ready);
    const std::vector<std::shared_ptr<const stream_feature>> ours = {tls, sasl, bind};
    auto f = el("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
                "<bind xmlns='urn:test'/><mechanisms xmlns='urn:test'/><other xmlns='urn:test'/>"
                "<starttls xmlns='urn:test'/><starttls xmlns='urn:test'><required/></starttls>"
                "<mechanisms xmlns='urn:other'/></stream:features>");
    auto offered = detail::match_features(f.root(), ours);
    REQUIRE(offered.size() == 3);
    CHECK(offered[0].feature == tls.get());
    CHECK(offered[1].feature == sasl.get());
    CHECK(offered[2].feature == bind.get());
    CHECK_FALSE(offered[0].advertisement.child("required", "urn:test")); // the first <starttls/> counts
    // SASL fits as well (no secure bit needed), yet STARTTLS comes first.
    CHECK(detail::choose_feature(offered, ss::none)->feature == tls.get());
    CHECK(detail::choose_feature(offered, ss::secure)->feature == sasl.get());
    // Two of ours for one name: the first takes the advertisement.
    auto twin = std::make_shared<fake_feature>("bind", ss::none, ss::none);
    auto with_twin = detail::match_features(f.root(), {tls, sasl, bind, twin});
    REQUIRE(with_twin.size() == 3);
    CHECK(with_twin[2].feature == bind.get());
}

namespace {

struct script_done : std::exception {};

// A transport that is never read: features see it only through
// current_transport() (SASL asks it about TLS).
using xmpp::test::idle_transport;

// The negotiator's side of one stream: the server's elements come from a
// script; whatever the client sends is recorded; an empty script ends the
// run (script_done) so the test sees what the client chose first.
struct scripted_io final : negotiation_io {
    explicit scripted_io(asio::any_io_executor ex) : transport_(ex) {}
    asio::awaitable<void> send(xml::node) override { co_return; }
    asio::awaitable<void> send_raw(std::string_view x) override {
        sent.emplace_back(x);
        co_return;
    }
    asio::awaitable<xml::element> receive() override {
        if (script.empty()) throw script_done();
        auto e = el(script.front());
        script.pop_front();
        co_return e;
    }
    session_state state() const noexcept override { return state_; }
    transport& current_transport() noexcept override { return transport_; }
    std::unique_ptr<transport> take_transport() override { throw script_done(); }
    const jid& local_address() const noexcept override { return address_; }
    void set_local_address(jid j) override { address_ = std::move(j); }
    const std::string& peer_domain() const noexcept override { return domain_; }
    bool is_initiator() const noexcept override { return true; }
    const jid& peer_address() const noexcept override { return peer_; }
    void set_peer_address(jid j) override { peer_ = std::move(j); }
    jid peer_;
    asio::awaitable<void> open_stream() override { co_return; }
    asio::awaitable<xml::stream_header> receive_header() override {
        xml::stream_header h;
        h.version = "1.0";
        h.default_ns = "jabber:client";
        h.id = "s1";
        co_return h;
    }
    void replace_transport(std::unique_ptr<transport>) override {}
    void add_state(session_state bits) override { state_ |= bits; }

    std::deque<std::string> script;
    std::vector<std::string> sent;
    idle_transport transport_;
    session_state state_ = session_state::none;
    jid address_ = jid::parse("alice@example.org");
    std::string domain_ = "example.org";
};

// Runs the default client negotiator over `features` until the script ends;
// returns what it sent and how it ended.
struct run_result {
    std::vector<std::string> sent;
    boost::system::error_code ec; // system_error's code; {} for script_done
    bool script_ended = false;
};

run_result negotiate(const std::string& features, bool allow_plaintext) {
    asio::io_context io;
    scripted_io s(io.get_executor());
    s.script.push_back("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>" + features +
                       "</stream:features>");
    client_features_config cfg;
    cfg.credentials = {"alice", "secret", ""};
    cfg.allow_plaintext = allow_plaintext;
    tls::client_options to;
    to.use_system_store = false;
    cfg.tls = tls::context::make_client(to);
    auto neg = make_client_negotiator(cfg);
    run_result r;
    asio::co_spawn(io, neg->run(s), [&](std::exception_ptr e) {
        try {
            if (e) std::rethrow_exception(e);
        } catch (const script_done&) {
            r.script_ended = true;
        } catch (const boost::system::system_error& se) {
            r.ec = se.code();
        }
    });
    io.run();
    r.sent = s.sent;
    return r;
}

const std::string starttls_el = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
const std::string starttls_required =
    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>";
const std::string mechanisms_el = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                                  "<mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>";

} // namespace

TEST_CASE("client negotiator: an offered STARTTLS goes first, required or not, whatever the order") {
    for (bool allow_plaintext : {false, true}) {
        for (const auto& features : {mechanisms_el + starttls_el, starttls_el + mechanisms_el,
                                     mechanisms_el + starttls_required, starttls_required + mechanisms_el}) {
            CAPTURE(allow_plaintext, features);
            auto r = negotiate(features, allow_plaintext);
            CHECK(r.script_ended); // waiting for <proceed/>
            CHECK_FALSE(r.ec);
            REQUIRE(r.sent.size() == 1);
            CHECK(r.sent[0] == starttls_el);
        }
    }
}

TEST_CASE("client negotiator: without STARTTLS offered, allow_plaintext decides") {
    SECTION("refused by default (RFC 7590 3.1)") {
        auto r = negotiate(mechanisms_el, false);
        CHECK(r.ec == errc::tls_required);
        CHECK(r.sent.empty());
    }
    SECTION("allowed: SASL goes on, without PLAIN") {
        auto r = negotiate(mechanisms_el, true);
        CHECK(r.script_ended);
        REQUIRE(r.sent.size() == 1);
        CHECK(r.sent[0].starts_with("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>"));
        auto only_plain = negotiate("<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                                    "<mechanism>PLAIN</mechanism></mechanisms>", true);
        CHECK(only_plain.ec == sasl::errc::no_acceptable_mechanism);
        CHECK(only_plain.sent.empty());
    }
}

namespace {
// A feature whose parse step suspends (as a lookup would) before it
// decides, and whose negotiate step reads what parse kept.
struct async_feature final : stream_feature {
    std::string_view name() const noexcept override { return "x"; }
    std::string_view ns() const noexcept override { return "urn:test:x"; }
    session_state prohibited() const noexcept override { return session_state::ready; }
    asio::awaitable<parse_result> parse(xml::node advertised) const override {
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        co_return parse_result{false, std::string(advertised.attr("v"))};
    }
    asio::awaitable<negotiate_result> negotiate(negotiation_stream& s, std::any& data) const override {
        seen = std::any_cast<std::string>(data);
        co_await s.send_raw("<x xmlns='urn:test:x'/>");
        co_return negotiate_result{session_state::ready, nullptr, false};
    }
    mutable std::string seen;
};
} // namespace

TEST_CASE("client negotiator: parse is an awaitable step whose result reaches negotiate") {
    asio::io_context io;
    scripted_io s(io.get_executor());
    s.state_ = session_state::secure | session_state::authenticated;
    s.script.push_back("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
                       "<x xmlns='urn:test:x' v='42'/></stream:features>");
    client_features_config cfg;
    auto x = std::make_shared<async_feature>();
    auto neg = make_client_negotiator(cfg, {x});
    bool finished = false;
    std::exception_ptr failure;
    asio::co_spawn(io, neg->run(s), [&](std::exception_ptr e) {
        finished = true;
        failure = e;
    });
    io.run();
    REQUIRE(finished);
    CHECK_FALSE(failure);
    CHECK(x->seen == "42");
    CHECK(has_all(s.state_, session_state::ready));
    REQUIRE(s.sent.size() == 1);
    CHECK(s.sent[0] == "<x xmlns='urn:test:x'/>");
}
