#include "parse_helper.hpp"

#include <xmpp/stream_error.hpp>
#include <xmpp/xml/writer.hpp>

#include <memory>
#include <string>

using namespace xmpp;
using xmpp::test::parse;
namespace ns = xmpp::xml::ns;

namespace {


constexpr int first = static_cast<int>(stream_errc::bad_format);
constexpr int last = static_cast<int>(stream_errc::unsupported_version);

} // namespace

TEST_CASE("stream_errc: names round-trip and match RFC 6120 4.9.3", "[stream_error]") {
    CHECK(last - first + 1 == 25);
    CHECK(to_string(stream_errc::bad_format) == "bad-format");
    CHECK(to_string(stream_errc::not_well_formed) == "not-well-formed");
    CHECK(to_string(stream_errc::see_other_host) == "see-other-host");
    CHECK(to_string(stream_errc::unsupported_stanza_type) == "unsupported-stanza-type");
    CHECK(to_string(stream_errc::unsupported_version) == "unsupported-version");
    for (int v = first; v <= last; ++v) {
        auto e = static_cast<stream_errc>(v);
        auto name = to_string(e);
        INFO(v << " " << name);
        REQUIRE(!name.empty());
        CHECK(stream_errc_from_string(name) == e);
    }
    CHECK(to_string(static_cast<stream_errc>(0)).empty());
    CHECK(to_string(static_cast<stream_errc>(last + 1)).empty());
    CHECK_FALSE(stream_errc_from_string("xml-not-well-formed")); // RFC 3920 name, gone in 6120
    CHECK_FALSE(stream_errc_from_string(""));
    CHECK_FALSE(stream_errc_from_string("Conflict"));
}

TEST_CASE("stream_errc: error_code and category", "[stream_error]") {
    boost::system::error_code ec = stream_errc::host_unknown; // is_error_code_enum
    CHECK(ec.category().name() == std::string("xmpp.stream"));
    CHECK(&ec.category() == &stream_category());
    CHECK(ec.value() == static_cast<int>(stream_errc::host_unknown));
    CHECK(ec == stream_errc::host_unknown);
    CHECK(ec != stream_errc::host_gone);
    CHECK(ec.failed());
    CHECK(ec.message().find("not served") != std::string::npos);
    CHECK(stream_category().message(0) == "no error");
    CHECK(stream_category().message(1000).find("unknown") != std::string::npos);
    CHECK(stream_category().message(-1).find("unknown") != std::string::npos);
    // Every condition has its own message.
    for (int v = first; v <= last; ++v) {
        auto m = make_error_code(static_cast<stream_errc>(v)).message();
        CHECK(!m.empty());
        CHECK(m.find("unknown") == std::string::npos);
        if (v > first) CHECK(m != make_error_code(static_cast<stream_errc>(v - 1)).message());
    }
}

TEST_CASE("stream_error: every condition round-trips through text", "[stream_error]") {
    for (int v = first; v <= last; ++v) {
        auto cond = static_cast<stream_errc>(v);
        INFO(to_string(cond));
        stream_error err;
        err.condition = cond;
        err.text = "Why <it> & \"failed\" \xC3\xA9";
        err.lang = "en";
        if (cond == stream_errc::see_other_host) err.see_other_host = "[2001:41d0:1:a49b::1]:9222";
        err.app_specific = xml::element("escape-your-data", "http://example.org/ns");

        auto el = err.to_element();
        auto root = el.root();
        CHECK(root.qname() == "stream:error");
        CHECK(root.is("error", ns::stream));
        CHECK(root.child(to_string(cond), ns::streams_errors));

        auto text = xml::to_string(root);
        REQUIRE(!text.empty());
        auto p = parse(text);
        CHECK(p.root.is("error", ns::stream));
        auto back = stream_error::from_element(p.root);
        REQUIRE(back);
        CHECK(back->condition == cond);
        CHECK(back->code() == cond);
        CHECK(back->text == err.text);
        CHECK(back->lang == "en");
        CHECK(back->see_other_host == err.see_other_host);
        REQUIRE(back->app_specific);
        CHECK(back->app_specific.root().is("escape-your-data", "http://example.org/ns"));
    }
}

TEST_CASE("stream_error: minimal element has only the condition", "[stream_error]") {
    stream_error err;
    err.condition = stream_errc::conflict;
    auto el = err.to_element();
    auto root = el.root();
    auto c = root.first_child();
    REQUIRE(c);
    CHECK(c.is("conflict", ns::streams_errors));
    CHECK_FALSE(c.next_sibling());
    CHECK(c.text().empty());

    auto back = stream_error::from_element(root);
    REQUIRE(back);
    CHECK(back->condition == stream_errc::conflict);
    CHECK(back->text.empty());
    CHECK(back->lang.empty());
    CHECK_FALSE(back->app_specific);

    // see_other_host text is written only for see-other-host.
    err.see_other_host = "other.example";
    CHECK(err.to_element().root().first_child().text().empty());
}

TEST_CASE("stream_error: parsing resolves namespaces, not prefixes", "[stream_error]") {
    SECTION("any prefix bound to the streams namespace") {
        auto p = parse("<s:error xmlns:s='http://etherx.jabber.org/streams'>"
                       "<c:reset xmlns:c='urn:ietf:params:xml:ns:xmpp-streams'/></s:error>");
        auto e = stream_error::from_element(p.root);
        REQUIRE(e);
        CHECK(e->condition == stream_errc::reset);
    }
    SECTION("default namespace on error") {
        auto p = parse("<error xmlns='http://etherx.jabber.org/streams'>"
                       "<system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>");
        auto e = stream_error::from_element(p.root);
        REQUIRE(e);
        CHECK(e->condition == stream_errc::system_shutdown);
    }
    SECTION("stream prefix declared only on the stream header (scope)") {
        const auto scope = xmpp::test::client_context();
        auto p = parse("<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                       "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>who?</text></stream:error>",
                       scope);
        auto e = stream_error::from_element(p.root);
        REQUIRE(e);
        CHECK(e->condition == stream_errc::host_unknown);
        CHECK(e->text == "who?");
        CHECK(e->lang.empty());
    }
    SECTION("stream prefix bound to another namespace") {
        auto p = parse("<stream:error xmlns:stream='urn:example:not-streams'>"
                       "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
        CHECK_FALSE(stream_error::from_element(p.root));
    }
    SECTION("unbound prefix: the reader refuses it before from_element sees it") {
        boost::system::error_code ec;
        auto el = xml::parse_element("<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                                     "</stream:error>",
                                     ec);
        CHECK(ec == stream_errc::bad_namespace_prefix);
        CHECK_FALSE(stream_error::from_element(el.root()));
    }
    SECTION("not an error element") {
        auto p = parse("<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>");
        CHECK_FALSE(stream_error::from_element(p.root));
        CHECK_FALSE(stream_error::from_element(xml::node()));
    }
    SECTION("condition in the wrong namespace is application-specific") {
        auto p = parse("<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                       "<conflict/></stream:error>");
        auto e = stream_error::from_element(p.root);
        REQUIRE(e);
        CHECK(e->condition == stream_errc::undefined_condition);
        REQUIRE(e->app_specific);
        CHECK(e->app_specific.root().name() == "conflict");
    }
}

TEST_CASE("stream_error: unknown and missing conditions", "[stream_error]") {
    SECTION("unknown condition maps to undefined-condition (4.9.3)") {
        auto p = parse("<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                       "<too-much-coffee xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                       "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='fr'>trop</text>"
                       "<app xmlns='urn:example:app'><detail/></app>"
                       "<second-app xmlns='urn:example:app'/>"
                       "</stream:error>");
        auto e = stream_error::from_element(p.root);
        REQUIRE(e);
        CHECK(e->condition == stream_errc::undefined_condition);
        CHECK(e->text == "trop");
        CHECK(e->lang == "fr");
        REQUIRE(e->app_specific);
        CHECK(e->app_specific.root().is("app", "urn:example:app")); // the first one
        CHECK(e->app_specific.root().child("detail"));
    }
    SECTION("no condition at all") {
        auto p = parse("<stream:error xmlns:stream='http://etherx.jabber.org/streams'/>");
        auto e = stream_error::from_element(p.root);
        REQUIRE(e);
        CHECK(e->condition == stream_errc::undefined_condition);
    }
    SECTION("the first condition wins; text is not a condition") {
        auto p = parse("<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                       "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>a</text>"
                       "<invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                       "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                       "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>b</text>"
                       "</stream:error>");
        auto e = stream_error::from_element(p.root);
        REQUIRE(e);
        CHECK(e->condition == stream_errc::invalid_from);
        CHECK(e->text == "a");
    }
    SECTION("an out-of-range enum value is sent as undefined-condition") {
        stream_error err;
        err.condition = static_cast<stream_errc>(999);
        auto el = err.to_element();
        CHECK(el.root().first_child().is("undefined-condition", ns::streams_errors));
    }
}

TEST_CASE("stream_error: see-other-host as in RFC 6120 4.9.3.19", "[stream_error]") {
    auto p = parse("<stream:error xmlns:stream='http://etherx.jabber.org/streams'>\n"
                   "  <see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"
                   "[2001:41D0:1:A49b::1]:9222</see-other-host>\n"
                   "</stream:error>");
    auto e = stream_error::from_element(p.root);
    REQUIRE(e);
    CHECK(e->condition == stream_errc::see_other_host);
    CHECK(e->see_other_host == "[2001:41D0:1:A49b::1]:9222");
    CHECK(e->text.empty());
    CHECK_FALSE(e->app_specific);
}
