// Tests of lib/src/xml/writer.cpp: escaping, refusal of what a reader would
// reject, namespace handling, and that whatever it writes reads back.
#include "test_catch.hpp"

#include <xmpp/xml/reader.hpp>
#include <xmpp/xml/writer.hpp>

#include <random>
#include <string>

using xmpp::xml::element;
namespace ns = xmpp::xml::ns;
namespace xml = xmpp::xml;

namespace {

// Reads `el` back as the first element of a jabber:client stream.
std::optional<element> read_back(const std::string& el) {
    xml::reader r;
    xml::stream_header h;
    h.default_ns = ns::client;
    std::string s;
    xml::write_stream_header(h, s);
    r.feed(s + el);
    boost::system::error_code ec;
    for (;;) {
        auto ev = r.next(ec);
        if (ec || ev == xml::frame_event::need_more) return std::nullopt;
        if (ev == xml::frame_event::element) return element::copy_of(r.element());
    }
}

} // namespace

TEST_CASE("writer: escaping", "[writer]") {
    element m("message", ns::client);
    m.root().set_attr("to", "a'b\"c<d>e&f\tg\nh\ri");
    m.root().append("body").set_text("<&>'\"\r\n\t]]>");
    std::string out;
    REQUIRE_FALSE(xml::write(m.root(), out, ns::client));
    CHECK(out == "<message to='a&apos;b&quot;c&lt;d&gt;e&amp;f&#9;g&#10;h&#13;i'>"
                 "<body>&lt;&amp;&gt;'\"&#13;\n\t]]&gt;</body></message>");
    auto back = read_back(out);
    REQUIRE(back);
    CHECK(back->root().attr("to") == "a'b\"c<d>e&f\tg\nh\ri");
    CHECK(back->root().child("body").text() == "<&>'\"\r\n\t]]>");
}

TEST_CASE("writer: refuses what a reader would reject", "[writer]") {
    auto err = [](auto build) {
        element e("message", ns::client);
        build(e.root());
        std::string out = "keep";
        auto ec = xml::write(e.root(), out);
        CHECK(out == "keep"); // nothing half-written
        return ec;
    };
    CHECK(err([](xml::node n) { n.append("body").set_text("a\x01z"); }) == xml::errc::invalid_char);
    CHECK(err([](xml::node n) { n.set_attr("x", "a\x02z"); }) == xml::errc::invalid_char);
    CHECK(err([](xml::node n) { n.append("body").set_text("\xef\xbf\xbe"); }) == xml::errc::invalid_char);
    CHECK(err([](xml::node n) { n.append("body").set_text("\xc3"); }) == xml::errc::invalid_utf8);
    CHECK(err([](xml::node n) { n.set_attr("x", "\xed\xa0\x80"); }) == xml::errc::invalid_utf8);
    CHECK(err([](xml::node n) { n.append("a b"); }) == xml::errc::invalid_name);
    CHECK(err([](xml::node n) { n.append("1a"); }) == xml::errc::invalid_name);
    CHECK(err([](xml::node n) { n.set_attr("a:b:c", "1"); }) == xml::errc::invalid_name);
    // Names by the ASCII table and by the full rules: both ways agree.
    for (const char* bad : {"-a", ".a", "a:", ":a", "a\x80", "\xc3", "a\x01", "a b", "a/b"}) {
        INFO(bad);
        CHECK(err([&](xml::node n) { n.append(bad); }) == xml::errc::invalid_name);
        CHECK(err([&](xml::node n) { n.set_attr(bad, "1"); }) == xml::errc::invalid_name);
    }
    for (const char* good : {"a-b.c_1", "_x", "Z9", "\xc3\xa9t\xc3\xa9", "a\xc3\xa9"}) {
        INFO(good);
        element e("message", ns::client);
        e.root().append(good).set_attr(good, "v");
        std::string out;
        CHECK_FALSE(xml::write(e.root(), out));
        CHECK(out.find(std::string("<") + good + " " + good + "='v'/>") != std::string::npos);
    }
    {
        // A name longer than the writer's inline buffer for attribute names.
        const std::string longname(100, 'n');
        element e("message", ns::client);
        e.root().set_attr(longname, "v<");
        std::string out;
        CHECK_FALSE(xml::write(e.root(), out));
        CHECK(out == "<message xmlns='jabber:client' " + longname + "='v&lt;'/>");
    }
    CHECK(err([](xml::node n) { n.append("p:x"); }) == xml::errc::unbound_prefix);
    CHECK(err([](xml::node n) { n.set_attr("p:x", "1"); }) == xml::errc::unbound_prefix);
    CHECK(err([](xml::node n) { n.native().append_child(pugi::node_comment).set_value("c"); }) ==
          xml::errc::unsupported_node);
    CHECK(err([](xml::node n) { n.native().append_child(pugi::node_pi).set_name("php"); }) ==
          xml::errc::unsupported_node);
    CHECK(xml::write(xml::node(), *std::make_unique<std::string>()) == xml::errc::invalid_name);
    CHECK(err([](xml::node n) {
              n.native().append_attribute("a") = "1";
              n.native().append_attribute("a") = "2";
          }) == xml::errc::duplicate_attribute);
    CHECK(err([](xml::node n) {
              n.set_attr("xmlns:p", "urn:u").set_attr("xmlns:q", "urn:u").set_attr("p:x", "1").set_attr("q:x", "2");
          }) == xml::errc::duplicate_attribute);
    element ok("message", ns::client);
    ok.root().set_attr("xmlns:p", "urn:u").set_attr("xmlns:q", "urn:v").set_attr("p:x", "1").set_attr("q:x", "2");
    std::string written;
    CHECK_FALSE(xml::write(ok.root(), written)); // two namespaces: two attributes
}

TEST_CASE("writer: NUL cannot enter a tree", "[writer]") {
    element e("message", ns::client);
    CHECK_THROWS_AS(e.root().set_attr("x", std::string("a\0z", 3)), std::invalid_argument);
    CHECK_THROWS_AS(e.root().append("body").set_text(std::string("a\0z", 3)), std::invalid_argument);
    CHECK_FALSE(e.root().find_attr("x"));
}

TEST_CASE("writer: namespaces on the root", "[writer]") {
    element m("message", ns::client);
    std::string a, b, c;
    REQUIRE_FALSE(xml::write(m.root(), a, ns::client));
    CHECK(a == "<message/>"); // the stream declares it
    REQUIRE_FALSE(xml::write(m.root(), b, ns::server));
    CHECK(b == "<message xmlns='jabber:client'/>");
    element f("stream:features", ns::stream);
    REQUIRE_FALSE(xml::write(f.root(), c, ns::client));
    CHECK(c == "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>");

    // Unprefixed children that declare their own namespace need no xmlns='' on the root.
    element se("stream:error", ns::stream);
    se.root().append("conflict", ns::streams_errors);
    std::string d;
    REQUIRE_FALSE(xml::write(se.root(), d, ns::client));
    CHECK(d == "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
               "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
    // ...but one that inherits the empty default namespace does.
    element emp("p:x", "urn:p");
    emp.root().append("plain");
    std::string e;
    REQUIRE_FALSE(xml::write(emp.root(), e, ns::client));
    CHECK(e == "<p:x xmlns='' xmlns:p='urn:p'><plain/></p:x>");
}

TEST_CASE("writer: stream header and close", "[writer]") {
    xml::stream_header h;
    h.to = "example.com";
    h.from = "juliet@example.com";
    h.version = "1.0";
    h.lang = "en";
    h.default_ns = ns::client;
    std::string out;
    xml::write_stream_header(h, out);
    CHECK(out == "<?xml version='1.0'?><stream:stream from='juliet@example.com' to='example.com' version='1.0' "
                 "xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
    xml::write_stream_close(h, out);
    xml::reader r;
    r.feed(out);
    boost::system::error_code ec;
    CHECK(r.next(ec) == xml::frame_event::stream_open);
    CHECK(r.header().to == "example.com");
    CHECK(r.next(ec) == xml::frame_event::stream_close);
    CHECK_FALSE(ec);
}

TEST_CASE("writer: random text either fails to write or reads back unchanged", "[writer]") {
    std::mt19937 rng(7);
    int written = 0;
    for (int i = 0; i < 3000; ++i) {
        std::string text;
        const int n = 1 + static_cast<int>(rng() % 12);
        for (int j = 0; j < n; ++j) {
            static const char* pieces[] = {"a", "<", ">", "&", "'", "\"", "\r", "\n", "\t", "\x01", "]]>",
                                           "\xc3\xa9", "\xc3", "\xef\xbf\xbf", "\xf0\x9f\x98\x80", "&amp;",
                                           " ", "\x7f", "\xe2\x80"};
            text += pieces[rng() % (sizeof pieces / sizeof *pieces)];
        }
        element m("message", ns::client);
        m.root().set_attr("a", text);
        m.root().append("body").set_text(text);
        std::string out;
        if (xml::write(m.root(), out)) continue;
        ++written;
        auto back = read_back(out);
        REQUIRE(back);
        CHECK(back->root().attr("a") == text);
        CHECK(back->root().child("body").text() == text);
    }
    CHECK(written > 500);
}
