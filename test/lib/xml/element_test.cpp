// Tests of lib/src/xml/element.cpp: building trees, namespace declarations
// and copies that keep inherited namespaces.
#include "test_catch.hpp"

#include <xmpp/xml/element.hpp>
#include <xmpp/xml/reader.hpp>
#include <xmpp/xml/writer.hpp>

using xmpp::xml::element;
using xmpp::xml::node;
namespace ns = xmpp::xml::ns;

TEST_CASE("element: build with namespaces", "[element]") {
    element iq("iq", ns::client);
    auto root = iq.root();
    root.set_attr("type", "get").set_attr("id", "x1").set_attr("type", "set");
    CHECK(root.attr("type") == "set");
    CHECK(root.attr_count() == 3); // xmlns, type, id
    auto q = root.append("query", "http://jabber.org/protocol/disco#info");
    q.append("feature").set_attr("var", "urn:xmpp:ping");
    auto same = root.append("other", ns::client); // no redundant xmlns
    CHECK_FALSE(same.find_attr("xmlns"));
    CHECK(q.ns() == "http://jabber.org/protocol/disco#info");
    CHECK(q.first_child().ns() == "http://jabber.org/protocol/disco#info");
    auto p = root.append("x:y", "urn:x");
    CHECK(p.attr("xmlns:x") == "urn:x");
    CHECK(p.ns() == "urn:x");
    CHECK(iq.to_string() ==
          "<iq xmlns='jabber:client' type='set' id='x1'><query xmlns='http://jabber.org/protocol/disco#info'>"
          "<feature var='urn:xmpp:ping'/></query><other/><x:y xmlns:x='urn:x'/></iq>");
    CHECK(root.remove_attr("id"));
    CHECK_FALSE(root.remove_attr("id"));
    CHECK(root.remove_child(same));
    CHECK_FALSE(root.child("other"));
}

TEST_CASE("element: text", "[element]") {
    element m("message", ns::client);
    auto b = m.root().append("body");
    b.set_text("a < b");
    b.append_text(" & c");
    CHECK(b.text() == "a < b & c");
    CHECK_FALSE(b.text_view());
    b.set_text("one");
    CHECK(b.text_view() == std::string_view("one"));
    CHECK(m.root().child("body").text() == "one");
    CHECK(m.root().text_view() == std::string_view(""));
}

TEST_CASE("element: copies are deep and self-contained", "[element]") {
    xmpp::xml::reader r;
    r.feed("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
           "xmlns:db='jabber:server:dialback'><stream:features><db:x/><bind xmlns='urn:b'/></stream:features>"
           "<message><body>hi</body></message>");
    boost::system::error_code ec;
    REQUIRE(r.next(ec) == xmpp::xml::frame_event::stream_open);
    REQUIRE(r.next(ec) == xmpp::xml::frame_event::element);
    element features = element::copy_of(r.element());
    REQUIRE(r.next(ec) == xmpp::xml::frame_event::element);
    element msg = element::copy_of(r.element());
    r.clear(); // the reader's document is reused: copies must not depend on it

    CHECK(features.root().is("features", ns::stream));
    CHECK(features.root().attr("xmlns:stream") == ns::stream);
    CHECK(features.root().first_child().is("x", "jabber:server:dialback"));
    CHECK(msg.root().is("message", ns::client));
    CHECK(msg.root().attr("xmlns") == ns::client);
    CHECK(msg.root().child("body").text() == "hi");

    element c = msg;
    c.root().child("body").set_text("changed");
    CHECK(msg.root().child("body").text() == "hi");
    element moved = std::move(c);
    CHECK(moved.root().child("body").text() == "changed");
    element assigned;
    CHECK_FALSE(assigned);
    assigned = msg;
    CHECK(assigned.root().child("body").text() == "hi");

    // append_copy into another tree keeps the copied element's namespace.
    element wrapper("forwarded", "urn:xmpp:forward:0");
    auto inner = wrapper.root().append_copy(msg.root());
    CHECK(inner.is("message", ns::client));
    CHECK(wrapper.root().child("message", ns::client));
}

TEST_CASE("element: empty handles are safe", "[element]") {
    node n;
    CHECK_FALSE(n);
    CHECK(n.name().empty());
    CHECK(n.ns().empty());
    CHECK(n.attr("x").empty());
    CHECK_FALSE(n.child("x"));
    CHECK(n.text().empty());
    element e;
    CHECK(e.to_string().empty());
}
