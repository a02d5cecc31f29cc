#include "parse_helper.hpp"

#include <xmpp/stanza.hpp>
#include <xmpp/xml/writer.hpp>

#include <array>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

using namespace xmpp;
using xmpp::test::parse;
namespace ns = xmpp::xml::ns;

namespace {


bool id_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

} // namespace

TEST_CASE("classify: names and content namespaces", "[stanza]") {
    for (auto cns : {ns::client, ns::server, ns::component}) {
        INFO(cns);
        std::string x = "xmlns='" + std::string(cns) + "'";
        CHECK(classify(parse("<message " + x + "/>").root) == stanza_kind::message);
        CHECK(classify(parse("<presence " + x + "/>").root) == stanza_kind::presence);
        CHECK(classify(parse("<iq " + x + " type='get'/>").root) == stanza_kind::iq);
        CHECK(classify(parse("<features " + x + "/>").root) == stanza_kind::other);
        CHECK(classify(parse("<messages " + x + "/>").root) == stanza_kind::other);
        CHECK(classify(parse("<i " + x + "/>").root) == stanza_kind::other);
    }
    CHECK(is_content_ns(ns::client));
    CHECK(is_content_ns(ns::server));
    CHECK(is_content_ns(ns::component));
    CHECK_FALSE(is_content_ns(ns::stream));
    CHECK_FALSE(is_content_ns(""));
}

TEST_CASE("classify: namespaces are resolved", "[stanza]") {
    // Wrong namespace, no namespace, prefix bound elsewhere.
    CHECK(classify(parse("<message xmlns='urn:xmpp:sm:3'/>").root) == stanza_kind::other);
    CHECK(classify(parse("<message/>").root) == stanza_kind::other);
    CHECK(classify(parse("<iq xmlns='jabber:clientx'/>").root) == stanza_kind::other);
    CHECK(classify(parse("<stream:message xmlns:stream='http://etherx.jabber.org/streams'/>").root) ==
          stanza_kind::other);
    CHECK(classify(parse("<c:message xmlns:c='jabber:client' xmlns='urn:x'/>").root) ==
          stanza_kind::message);
    CHECK(classify(xml::node()) == stanza_kind::other);

    // Content namespace declared only on the stream header.
    const auto scope = xmpp::test::client_context();
    CHECK(classify(parse("<presence/>", scope).root) == stanza_kind::presence);
    CHECK(classify(parse("<stream:features/>", scope).root) == stanza_kind::other);
    CHECK(classify(parse("<message xmlns='urn:other'/>", scope).root) == stanza_kind::other);

    // A nested element: the namespace comes from the ancestors.
    auto p = parse("<wrapper xmlns='jabber:server'><iq type='get'/></wrapper>");
    CHECK(classify(p.root.first_child()) == stanza_kind::iq);
}

TEST_CASE("type strings", "[stanza]") {
    for (auto t : {message_type::normal, message_type::chat, message_type::groupchat,
                   message_type::headline, message_type::error})
        CHECK(message_type_from_string(to_string(t)) == t);
    for (auto t : {presence_type::available, presence_type::unavailable, presence_type::subscribe,
                   presence_type::subscribed, presence_type::unsubscribe,
                   presence_type::unsubscribed, presence_type::probe, presence_type::error})
        CHECK(presence_type_from_string(to_string(t)) == t);
    for (auto t : {iq_type::get, iq_type::set, iq_type::result, iq_type::error})
        CHECK(iq_type_from_string(to_string(t)) == t);
    CHECK(to_string(message_type::groupchat) == "groupchat");
    CHECK(to_string(presence_type::available).empty());
    CHECK(to_string(presence_type::unsubscribed) == "unsubscribed");
    CHECK(to_string(iq_type::result) == "result");
    CHECK_FALSE(message_type_from_string("Chat"));
    CHECK_FALSE(presence_type_from_string("available")); // not a wire value
    CHECK_FALSE(iq_type_from_string(""));
}

TEST_CASE("stanza views: common attributes", "[stanza]") {
    auto p = parse("<message xmlns='jabber:client' id='a1' to='juliet@example.com'"
                   " from='romeo@example.net/orchard' xml:lang='en' type='chat'/>");
    stanza_view v(p.root);
    REQUIRE(v);
    CHECK(v.kind() == stanza_kind::message);
    CHECK(v.id() == "a1");
    CHECK(v.to() == "juliet@example.com");
    CHECK(v.from() == "romeo@example.net/orchard");
    CHECK(v.lang() == "en");
    CHECK(v.type_attr() == "chat");
    CHECK_FALSE(v.is_error());
    CHECK(v.node() == p.root);

    auto q = parse("<presence xmlns='jabber:client'/>");
    stanza_view w(q.root);
    CHECK(w.id().empty());
    CHECK(w.to().empty());
    CHECK(w.from().empty());
    CHECK(w.lang().empty());
    CHECK(w.type_attr().empty());

    CHECK_FALSE(stanza_view());
    CHECK(stanza_view().id().empty());
}

TEST_CASE("message_view", "[stanza]") {
    CHECK(message_view(parse("<message xmlns='jabber:client'/>").root).type() == message_type::normal);
    CHECK(message_view(parse("<message xmlns='jabber:client' type='headline'/>").root).type() ==
          message_type::headline);
    CHECK(message_view(parse("<message xmlns='jabber:client' type='error'/>").root).type() ==
          message_type::error);
    // RFC 6121 5.2.2: an unknown type is treated as normal.
    CHECK(message_view(parse("<message xmlns='jabber:client' type='shout'/>").root).type() ==
          message_type::normal);

    auto p = parse("<message xmlns='jabber:client'><subject>s</subject>"
                   "<body xml:lang='en'>Wherefore &amp; <![CDATA[<art>]]> thou</body>"
                   "<body xml:lang='fr'>Pourquoi</body></message>");
    CHECK(message_view(p.root).body() == "Wherefore & <art> thou");

    CHECK_FALSE(message_view(parse("<message xmlns='jabber:client'/>").root).body());
    CHECK(message_view(parse("<message xmlns='jabber:client'><body/></message>").root).body() == "");
    // A <body/> in another namespace is not the message body.
    CHECK_FALSE(message_view(parse("<message xmlns='jabber:client'><body xmlns='urn:x'>no</body>"
                                   "</message>")
                                 .root)
                    .body());
}

TEST_CASE("presence_view", "[stanza]") {
    CHECK(presence_view(parse("<presence xmlns='jabber:client'/>").root).type() ==
          presence_type::available);
    CHECK(presence_view(parse("<presence xmlns='jabber:client' type='probe'/>").root).type() ==
          presence_type::probe);
    CHECK(presence_view(parse("<presence xmlns='jabber:client' type='unavailable'/>").root).type() ==
          presence_type::unavailable);
    CHECK_FALSE(presence_view(parse("<presence xmlns='jabber:client' type='invisible'/>").root).type());
    CHECK_FALSE(presence_view(parse("<presence xmlns='jabber:client' type='available'/>").root).type());
}

TEST_CASE("iq_view", "[stanza]") {
    auto p = parse("<iq xmlns='jabber:client' type='set' id='b'>"
                   "<query xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>");
    iq_view v(p.root);
    CHECK(v.type() == iq_type::set);
    CHECK(v.is_request());
    REQUIRE(v.payload());
    CHECK(v.payload().is("query", "jabber:iq:roster"));

    auto e = parse("<iq xmlns='jabber:client' type='error' id='b'>"
                   "<error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                   "</error><query xmlns='jabber:iq:roster'/></iq>");
    iq_view ev(e.root);
    CHECK(ev.type() == iq_type::error);
    CHECK_FALSE(ev.is_request());
    CHECK(ev.is_error());
    REQUIRE(ev.payload());
    CHECK(ev.payload().is("query", "jabber:iq:roster")); // <error/> skipped

    auto only_error = parse("<iq xmlns='jabber:client' type='error'><error type='cancel'/></iq>");
    CHECK_FALSE(iq_view(only_error.root).payload());
    // An <error/> element in another namespace is payload.
    auto app_error = parse("<iq xmlns='jabber:client' type='result'><error xmlns='urn:x'/></iq>");
    CHECK(iq_view(app_error.root).payload().is("error", "urn:x"));

    CHECK_FALSE(iq_view(parse("<iq xmlns='jabber:client' type='result'/>").root).payload());
    CHECK_FALSE(iq_view(parse("<iq xmlns='jabber:client'/>").root).type());          // absent
    CHECK_FALSE(iq_view(parse("<iq xmlns='jabber:client' type='GET'/>").root).type()); // invalid
    CHECK_FALSE(iq_view(parse("<iq xmlns='jabber:client' type='GET'/>").root).is_request());
}

TEST_CASE("builders", "[stanza]") {
    SECTION("message") {
        auto m = make_message("juliet@example.com", "Art thou <not> Romeo?");
        auto r = m.root();
        CHECK(classify(r) == stanza_kind::message);
        CHECK(r.ns() == ns::client);
        message_view v(r);
        CHECK(v.type() == message_type::chat);
        CHECK(v.to() == "juliet@example.com");
        CHECK(v.id().size() == id_length);
        CHECK(v.body() == "Art thou <not> Romeo?");

        auto back = parse(xml::to_string(r));
        message_view bv(back.root);
        CHECK(bv.kind() == stanza_kind::message);
        CHECK(bv.body() == "Art thou <not> Romeo?");
        CHECK(bv.id() == v.id());

        auto n = make_message("", "", message_type::normal, ns::server);
        CHECK(n.root().is("message", ns::server));
        CHECK_FALSE(n.root().find_attr("type")); // normal is the default
        CHECK_FALSE(n.root().find_attr("to"));
        CHECK_FALSE(message_view(n.root()).body());
    }
    SECTION("presence") {
        auto p = make_presence();
        CHECK(classify(p.root()) == stanza_kind::presence);
        CHECK_FALSE(p.root().find_attr("type"));
        CHECK_FALSE(p.root().find_attr("to"));
        CHECK(presence_view(p.root()).type() == presence_type::available);

        auto s = make_presence(presence_type::subscribe, "juliet@example.com", ns::component);
        presence_view v(s.root());
        CHECK(v.kind() == stanza_kind::presence);
        CHECK(s.root().ns() == ns::component);
        CHECK(v.type() == presence_type::subscribe);
        CHECK(v.to() == "juliet@example.com");
    }
    SECTION("iq with payload, and its result") {
        auto q = make_iq(iq_type::get, "example.com", "query", "jabber:iq:roster");
        iq_view v(q.root());
        CHECK(v.kind() == stanza_kind::iq);
        CHECK(v.type() == iq_type::get);
        CHECK(v.to() == "example.com");
        CHECK(v.id().size() == id_length);
        // A 'to' with a NUL is refused, as by set_attr(), not cut short.
        CHECK_THROWS_AS(make_iq(iq_type::get, std::string_view("a\0b", 3)), std::invalid_argument);
        REQUIRE(v.payload());
        CHECK(v.payload().is("query", "jabber:iq:roster"));
        v.payload().append("item").set_attr("jid", "a@b");

        auto back = parse(xml::to_string(q.root()));
        iq_view bv(back.root);
        CHECK(bv.payload().child("item").attr("jid") == "a@b");

        // The request as the server sees it: with a from.
        back.root.set_attr("from", "romeo@example.net/orchard");
        auto res = make_iq_result(bv);
        iq_view rv(res.root());
        CHECK(rv.kind() == stanza_kind::iq);
        CHECK(rv.type() == iq_type::result);
        CHECK(rv.id() == v.id());
        CHECK(rv.to() == "romeo@example.net/orchard");
        CHECK(rv.from() == "example.com");
        CHECK_FALSE(rv.payload());
    }
    SECTION("iq without payload") {
        auto q = make_iq(iq_type::set, "");
        CHECK_FALSE(q.root().find_attr("to"));
        CHECK_FALSE(iq_view(q.root()).payload());
        CHECK(iq_view(q.root()).type() == iq_type::set);
    }
    SECTION("iq result keeps the namespace and omits absent addresses") {
        auto p = parse("<iq xmlns='jabber:server' type='get' id='x1'/>");
        auto res = make_iq_result(iq_view(p.root));
        REQUIRE(res);
        CHECK(res.root().is("iq", ns::server));
        CHECK(res.root().attr("id") == "x1");
        CHECK_FALSE(res.root().find_attr("to"));
        CHECK_FALSE(res.root().find_attr("from"));
    }
    SECTION("no result for results, errors, broken types, or non-IQs") {
        for (auto s : {"<iq xmlns='jabber:client' type='result' id='1'/>",
                       "<iq xmlns='jabber:client' type='error' id='1'/>",
                       "<iq xmlns='jabber:client' type='fetch' id='1'/>",
                       "<iq xmlns='jabber:client' id='1'/>",
                       "<message xmlns='jabber:client' type='get' id='1'/>",
                       "<iq xmlns='urn:x' type='get' id='1'/>"}) {
            INFO(s);
            auto p = parse(s);
            CHECK_FALSE(make_iq_result(iq_view(p.root)));
        }
    }
}

TEST_CASE("new_id: charset, length and uniqueness", "[stanza]") {
    std::unordered_set<std::string> ids;
    constexpr int n = 100000;
    ids.reserve(n);
    bool all_ok = true;
    for (int i = 0; i < n; ++i) {
        auto id = new_id();
        if (id.size() != id_length) all_ok = false;
        for (char c : id)
            if (!id_char(c)) all_ok = false;
        ids.insert(std::move(id));
    }
    CHECK(all_ok);
    CHECK(ids.size() == static_cast<std::size_t>(n));

    // All 64 characters show up at every position (~1560 times each over
    // 100k ids): every 6-bit group carries its full entropy.
    std::array<std::unordered_set<char>, id_length> seen;
    for (auto& id : ids)
        for (std::size_t i = 0; i < id_length; ++i) seen[i].insert(id[i]);
    for (std::size_t i = 0; i < id_length; ++i) {
        INFO("position " << i);
        CHECK(seen[i].size() == 64);
    }
}

TEST_CASE("new_id: threads do not share ids", "[stanza]") {
    constexpr int per_thread = 20000;
    std::vector<std::vector<std::string>> out(4);
    std::vector<std::thread> threads;
    for (auto& v : out)
        threads.emplace_back([&v] {
            for (int i = 0; i < per_thread; ++i) v.push_back(new_id());
        });
    for (auto& t : threads) t.join();
    std::unordered_set<std::string> all;
    for (auto& v : out) all.insert(v.begin(), v.end());
    CHECK(all.size() == out.size() * per_thread);
}

TEST_CASE("new_id: a forked child does not repeat the parent's ids", "[stanza]") {
    (void)new_id(); // the buffer now holds random bytes for later ids
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        auto id = new_id();
        auto w = ::write(fds[1], id.data(), id.size());
        ::_exit(w == static_cast<ssize_t>(id.size()) ? 0 : 1);
    }
    ::close(fds[1]);
    auto parent_id = new_id();
    std::string child_id(id_length, '\0');
    auto r = ::read(fds[0], child_id.data(), child_id.size());
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(r == static_cast<ssize_t>(id_length));
    CHECK(WIFEXITED(status));
    CHECK(child_id != parent_id);
}
