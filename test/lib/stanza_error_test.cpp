#include "parse_helper.hpp"

#include <xmpp/stanza.hpp>
#include <xmpp/stanza_error.hpp>
#include <xmpp/xml/writer.hpp>

#include <map>
#include <memory>
#include <string>

using namespace xmpp;
using xmpp::test::parse;
namespace ns = xmpp::xml::ns;

namespace {

constexpr int first = static_cast<int>(stanza_errc::bad_request);
constexpr int last = static_cast<int>(stanza_errc::unexpected_request);

using T = stanza_error_type;

// RFC 6120 8.3.3.1 .. 8.3.3.22, with the (first) type each one names.
const std::map<std::string, T> rfc_conditions = {
    {"bad-request", T::modify},
    {"conflict", T::cancel},
    {"feature-not-implemented", T::cancel},
    {"forbidden", T::auth},
    {"gone", T::cancel},
    {"internal-server-error", T::cancel},
    {"item-not-found", T::cancel},
    {"jid-malformed", T::modify},
    {"not-acceptable", T::modify},
    {"not-allowed", T::cancel},
    {"not-authorized", T::auth},
    {"policy-violation", T::modify},
    {"recipient-unavailable", T::wait},
    {"redirect", T::modify},
    {"registration-required", T::auth},
    {"remote-server-not-found", T::cancel},
    {"remote-server-timeout", T::wait},
    {"resource-constraint", T::wait},
    {"service-unavailable", T::cancel},
    {"subscription-required", T::auth},
    {"undefined-condition", T::cancel},
    {"unexpected-request", T::wait},
};

} // namespace

TEST_CASE("stanza_errc: every RFC 6120 8.3.3 condition with its usual type", "[stanza_error]") {
    CHECK(last - first + 1 == 22);
    std::size_t seen = 0;
    for (int v = first; v <= last; ++v) {
        auto e = static_cast<stanza_errc>(v);
        auto name = std::string(to_string(e));
        INFO(v << " " << name);
        auto it = rfc_conditions.find(name);
        REQUIRE(it != rfc_conditions.end());
        ++seen;
        CHECK(default_type(e) == it->second);
        CHECK(stanza_errc_from_string(name) == e);
    }
    CHECK(seen == rfc_conditions.size());
    CHECK(to_string(static_cast<stanza_errc>(0)).empty());
    CHECK(to_string(static_cast<stanza_errc>(last + 1)).empty());
    CHECK_FALSE(stanza_errc_from_string("payment-required")); // RFC 3920 only
    CHECK_FALSE(stanza_errc_from_string(""));
    CHECK(default_type(static_cast<stanza_errc>(0)) == T::cancel);
}

TEST_CASE("stanza_error_type: strings", "[stanza_error]") {
    CHECK(to_string(T::auth) == "auth");
    CHECK(to_string(T::cancel) == "cancel");
    CHECK(to_string(T::continue_) == "continue");
    CHECK(to_string(T::modify) == "modify");
    CHECK(to_string(T::wait) == "wait");
    for (auto t : {T::auth, T::cancel, T::continue_, T::modify, T::wait})
        CHECK(stanza_error_type_from_string(to_string(t)) == t);
    CHECK_FALSE(stanza_error_type_from_string("continue_"));
    CHECK_FALSE(stanza_error_type_from_string("Cancel"));
    CHECK_FALSE(stanza_error_type_from_string(""));
}

TEST_CASE("stanza_errc: error_code and category", "[stanza_error]") {
    boost::system::error_code ec = stanza_errc::item_not_found;
    CHECK(ec.category().name() == std::string("xmpp.stanza"));
    CHECK(&ec.category() == &stanza_category());
    CHECK(ec == stanza_errc::item_not_found);
    CHECK(ec != stanza_errc::forbidden);
    CHECK(ec.message().find("cannot be found") != std::string::npos);
    CHECK(stanza_category().message(0) == "no error");
    CHECK(stanza_category().message(77).find("unknown") != std::string::npos);
    // Distinct from the stream category even for equal values.
    CHECK(make_error_code(stanza_errc::conflict).category() != boost::system::generic_category());
    for (int v = first; v <= last; ++v) {
        auto m = make_error_code(static_cast<stanza_errc>(v)).message();
        CHECK(!m.empty());
        CHECK(m.find("unknown") == std::string::npos);
    }
}

TEST_CASE("stanza_error: constructors pick the usual type", "[stanza_error]") {
    stanza_error a;
    CHECK(a.condition == stanza_errc::undefined_condition);
    CHECK(a.type == T::cancel);
    stanza_error b(stanza_errc::forbidden, "no");
    CHECK(b.type == T::auth);
    CHECK(b.text == "no");
    CHECK(b.code() == stanza_errc::forbidden);
    stanza_error c(T::wait, stanza_errc::policy_violation);
    CHECK(c.type == T::wait);
    CHECK(c.condition == stanza_errc::policy_violation);
}

TEST_CASE("stanza_error: every condition round-trips through text", "[stanza_error]") {
    for (int v = first; v <= last; ++v) {
        auto cond = static_cast<stanza_errc>(v);
        INFO(to_string(cond));
        stanza_error err(cond, "Sorry & <goodbye> \xE2\x9C\x93");
        err.lang = "en";
        err.by = "example.net";
        if (cond == stanza_errc::gone || cond == stanza_errc::redirect)
            err.uri = "xmpp:romeo@afterlife.example.net?message;body=a&b";
        err.app_specific = xml::element("stanza-too-big", "urn:xmpp:errors");
        err.app_specific.root().set_attr("limit", "10000");

        auto el = err.to_element();
        auto root = el.root();
        CHECK(root.is("error", ns::client));
        CHECK(root.attr("type") == to_string(default_type(cond)));
        CHECK(root.attr("by") == "example.net");

        auto p = parse(xml::to_string(root));
        auto back = stanza_error::from_element(p.root);
        REQUIRE(back);
        CHECK(back->condition == cond);
        CHECK(back->type == default_type(cond));
        CHECK(back->text == err.text);
        CHECK(back->lang == "en");
        CHECK(back->by == "example.net");
        CHECK(back->uri == err.uri);
        REQUIRE(back->app_specific);
        CHECK(back->app_specific.root().is("stanza-too-big", "urn:xmpp:errors"));
        CHECK(back->app_specific.root().attr("limit") == "10000");
    }
}

TEST_CASE("stanza_error: explicit types and namespaces round-trip", "[stanza_error]") {
    for (auto t : {T::auth, T::cancel, T::continue_, T::modify, T::wait}) {
        stanza_error err(t, stanza_errc::undefined_condition);
        auto el = err.to_element(ns::server);
        CHECK(el.root().is("error", ns::server));
        auto p = parse(xml::to_string(el.root()));
        auto back = stanza_error::from_element(p.root);
        REQUIRE(back);
        CHECK(back->type == t);
        CHECK(back->by.empty());
        CHECK(back->text.empty());
        CHECK_FALSE(back->app_specific);
    }
    // The URI is written only for gone and redirect.
    stanza_error err(stanza_errc::conflict);
    err.uri = "xmpp:x@y";
    CHECK(err.to_element().root().first_child().text().empty());
}

TEST_CASE("stanza_error: parsing the RFC examples and broken input", "[stanza_error]") {
    SECTION("RFC 6120 8.3.3.5 gone") {
        auto p = parse("<message from='romeo@example.net' id='msg_1' to='juliet@capulet.com'"
                       " type='error' xmlns='jabber:client'>"
                       "<error by='example.net' type='cancel'>"
                       "<gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>"
                       "xmpp:romeo@afterlife.example.net</gone></error></message>");
        auto e = stanza_error::from_stanza(p.root);
        REQUIRE(e);
        CHECK(e->condition == stanza_errc::gone);
        CHECK(e->type == T::cancel);
        CHECK(e->by == "example.net");
        CHECK(e->uri == "xmpp:romeo@afterlife.example.net");
    }
    SECTION("application-specific condition with prefixes") {
        auto p = parse("<c:iq xmlns:c='jabber:client' type='error' id='x'>"
                       "<c:error type='modify'>"
                       "<s:bad-request xmlns:s='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                       "<too-many-subscriptions xmlns='http://jabber.org/protocol/pubsub#errors'/>"
                       "</c:error></c:iq>");
        auto e = stanza_error::from_stanza(p.root);
        REQUIRE(e);
        CHECK(e->condition == stanza_errc::bad_request);
        CHECK(e->type == T::modify);
        REQUIRE(e->app_specific);
        CHECK(e->app_specific.root().is("too-many-subscriptions",
                                        "http://jabber.org/protocol/pubsub#errors"));
    }
    SECTION("unknown condition and type fall back (8.3.3)") {
        auto p = parse("<error xmlns='jabber:client' type='sometimes'>"
                       "<out-of-cheese xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>");
        auto e = stanza_error::from_element(p.root);
        REQUIRE(e);
        CHECK(e->condition == stanza_errc::undefined_condition);
        CHECK(e->type == T::cancel);
    }
    SECTION("missing type takes the condition's usual one") {
        auto p = parse("<error xmlns='jabber:client'>"
                       "<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>");
        auto e = stanza_error::from_element(p.root);
        REQUIRE(e);
        CHECK(e->condition == stanza_errc::resource_constraint);
        CHECK(e->type == T::wait);
    }
    SECTION("condition in the wrong namespace is not a condition") {
        auto p = parse("<error xmlns='jabber:client' type='cancel'><item-not-found/></error>");
        auto e = stanza_error::from_element(p.root);
        REQUIRE(e);
        CHECK(e->condition == stanza_errc::undefined_condition);
        REQUIRE(e->app_specific); // it is some other namespace's element
        CHECK(e->app_specific.root().is("item-not-found", ns::client));
    }
    SECTION("error outside a content namespace") {
        auto p = parse("<error xmlns='urn:example:app' type='cancel'/>");
        CHECK_FALSE(stanza_error::from_element(p.root));
        auto q = parse("<error type='cancel'/>");
        CHECK_FALSE(stanza_error::from_element(q.root));
        CHECK_FALSE(stanza_error::from_element(xml::node()));
    }
    SECTION("from_stanza needs type='error'") {
        auto p = parse("<iq xmlns='jabber:client' type='result' id='1'>"
                       "<error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                       "</error></iq>");
        CHECK_FALSE(stanza_error::from_stanza(p.root));
    }
    SECTION("from_stanza on a non-stanza") {
        auto p = parse("<message xmlns='urn:example:other' type='error'/>");
        CHECK_FALSE(stanza_error::from_stanza(p.root));
    }
    SECTION("type='error' without <error/> still reports an error") {
        auto p = parse("<iq xmlns='jabber:server' type='error' id='1'/>");
        auto e = stanza_error::from_stanza(p.root);
        REQUIRE(e);
        CHECK(e->condition == stanza_errc::undefined_condition);
    }
    SECTION("<error/> in another namespace inside the stanza is ignored") {
        auto p = parse("<presence xmlns='jabber:client' type='error'>"
                       "<error xmlns='urn:example:x'/>"
                       "<error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                       "</error></presence>");
        auto e = stanza_error::from_stanza(p.root);
        REQUIRE(e);
        CHECK(e->condition == stanza_errc::forbidden);
        CHECK(e->type == T::auth);
    }
}

TEST_CASE("make_error_reply: RFC 6120 8.3.1", "[stanza_error]") {
    SECTION("addresses swap, id and namespace kept") {
        auto p = parse("<iq xmlns='jabber:server' from='romeo@example.net/orchard'"
                       " to='juliet@example.com' type='get' id='rr82a1z7'>"
                       "<query xmlns='jabber:iq:roster'/></iq>");
        auto reply = make_error_reply(p.root, stanza_error(stanza_errc::service_unavailable));
        auto r = reply.root();
        REQUIRE(r);
        CHECK(r.is("iq", ns::server));
        CHECK(r.attr("type") == "error");
        CHECK(r.attr("id") == "rr82a1z7");
        CHECK(r.attr("to") == "romeo@example.net/orchard");
        CHECK(r.attr("from") == "juliet@example.com");
        CHECK_FALSE(r.child("query", "jabber:iq:roster")); // not included by default

        auto back = parse(xml::to_string(r));
        CHECK(classify(back.root) == stanza_kind::iq);
        auto e = stanza_error::from_stanza(back.root);
        REQUIRE(e);
        CHECK(e->condition == stanza_errc::service_unavailable);
        CHECK(e->type == T::cancel);
    }
    SECTION("original payload included on request, before <error/>") {
        auto p = parse("<message xmlns='jabber:client' to='nobody@example.com' id='m1'>"
                       "<body>hi</body><x:data xmlns:x='urn:example:x'/></message>");
        stanza_error err(stanza_errc::item_not_found);
        err.by = "example.com";
        auto reply = make_error_reply(p.root, err, true);
        auto r = reply.root();
        REQUIRE(r);
        CHECK(r.is("message", ns::client));
        CHECK(r.attr("from") == "nobody@example.com");
        CHECK_FALSE(r.find_attr("to")); // the request had no 'from'
        auto c = r.first_child();
        REQUIRE(c);
        CHECK(c.is("body", ns::client));
        c = c.next_sibling();
        REQUIRE(c);
        CHECK(c.is("data", "urn:example:x"));
        c = c.next_sibling();
        REQUIRE(c);
        CHECK(c.is("error", ns::client));
        CHECK(c.attr("by") == "example.com");

        auto back = parse(xml::to_string(r));
        auto e = stanza_error::from_stanza(back.root);
        REQUIRE(e);
        CHECK(e->condition == stanza_errc::item_not_found);
        CHECK(e->by == "example.com");
        CHECK(message_view(back.root).body() == "hi");
    }
    SECTION("prefixed stanza: <error/> shares the prefix") {
        auto p = parse("<c:presence xmlns:c='jabber:component:accept' from='a@b' to='c@d'"
                       " type='subscribe'/>");
        auto reply = make_error_reply(p.root, stanza_error(stanza_errc::not_allowed));
        auto back = parse(xml::to_string(reply.root()));
        CHECK(classify(back.root) == stanza_kind::presence);
        CHECK(back.root.ns() == ns::component);
        auto e = stanza_error::from_stanza(back.root);
        REQUIRE(e);
        CHECK(e->condition == stanza_errc::not_allowed);
    }
    SECTION("no reply to errors, IQ results, or non-stanzas") {
        auto err = parse("<message xmlns='jabber:client' type='error' from='a@b'/>");
        CHECK_FALSE(make_error_reply(err.root, stanza_error()));
        auto res = parse("<iq xmlns='jabber:client' type='result' id='1' from='a@b'/>");
        CHECK_FALSE(make_error_reply(res.root, stanza_error()));
        auto other = parse("<iq xmlns='urn:example:x' type='get' id='1'/>");
        CHECK_FALSE(make_error_reply(other.root, stanza_error()));
        CHECK_FALSE(make_error_reply(xml::node(), stanza_error()));
        // An IQ with a broken type may get an error (bad-request, 8.3.3.1).
        auto bad = parse("<iq xmlns='jabber:client' type='fetch' id='1'/>");
        CHECK(make_error_reply(bad.root, stanza_error(stanza_errc::bad_request)));
    }
}
