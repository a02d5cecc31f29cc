// Tests of lib/src/xml/reader.cpp: namespace resolution against the stream
// header, the checks pugixml does not make, and parse -> write -> parse trips.
#include "test_data.hpp"

#include <xmpp/xml/reader.hpp>
#include <xmpp/xml/writer.hpp>

#include <optional>
#include <string>
#include <vector>

using xmpp::stream_errc;
using xmpp::xml::frame_event;
using xmpp::xml::reader;
namespace ns = xmpp::xml::ns;

namespace {

const std::string hdr = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
                        "to='example.com' version='1.0'>";

// Feeds `data` and returns the first element, copied (or taken out of the
// reader); fails the test on error.
xmpp::xml::element first_element(reader& r, const std::string& data, bool take = false) {
    r.feed(data);
    boost::system::error_code ec;
    for (;;) {
        auto ev = r.next(ec);
        REQUIRE_FALSE(ec);
        REQUIRE(ev != frame_event::need_more);
        if (ev == frame_event::element) return take ? r.take_element() : xmpp::xml::element::copy_of(r.element());
    }
}

boost::system::error_code error_of(const std::string& data) {
    reader r;
    r.feed(data);
    boost::system::error_code ec;
    while (r.next(ec) != frame_event::need_more) {}
    return ec;
}

// Every element of a stream, serialized for the given stream namespace.
std::vector<std::string> elements_of(const std::string& data) {
    reader r;
    r.feed(data);
    std::vector<std::string> out;
    boost::system::error_code ec;
    for (;;) {
        auto ev = r.next(ec);
        REQUIRE_FALSE(ec);
        if (ev == frame_event::need_more) break;
        if (ev != frame_event::element) continue;
        std::string s;
        REQUIRE_FALSE(xmpp::xml::write(r.element(), s, r.header().default_ns));
        out.push_back(s);
    }
    return out;
}

} // namespace

TEST_CASE("reader: stream header attributes and namespaces", "[reader]") {
    reader r;
    r.feed("<?xml version='1.0'?><stream:stream from='example.com' to='juliet@example.com' id='abc&amp;' "
           "version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
           "xmlns:db='jabber:server:dialback'>");
    boost::system::error_code ec;
    REQUIRE(r.next(ec) == frame_event::stream_open);
    const auto& h = r.header();
    CHECK(h.from == "example.com");
    CHECK(h.to == "juliet@example.com");
    CHECK(h.id == "abc&");
    CHECK(h.version == "1.0");
    CHECK(h.lang == "en");
    CHECK(h.default_ns == "jabber:client");
    CHECK(h.qname == "stream:stream");
    REQUIRE(h.prefixes.size() == 2);
    CHECK(h.prefixes[1].first == "db");
    CHECK(r.scope().lookup("stream") == ns::stream);
}

TEST_CASE("reader: namespaces resolve from the element, its ancestors and the stream", "[reader]") {
    reader r;
    r.feed(hdr + "<message to='a@b'><body>x</body><x xmlns='jabber:x:data'><field/></x>"
                 "<p:y xmlns:p='urn:p'><p:z/><w/></p:y></message>"
                 "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>");
    boost::system::error_code ec;
    REQUIRE(r.next(ec) == frame_event::stream_open);
    REQUIRE(r.next(ec) == frame_event::element);
    auto m = r.element();
    CHECK(m.name() == "message");
    CHECK(m.ns() == ns::client); // inherited from the stream header
    CHECK(m.child("body").ns() == ns::client);
    CHECK(m.child("body").text() == "x");
    auto x = m.child("x", "jabber:x:data");
    REQUIRE(x);
    CHECK(x.first_child().ns() == "jabber:x:data");
    CHECK_FALSE(m.child("x")); // not in jabber:client
    auto y = m.child("y", "urn:p");
    REQUIRE(y);
    CHECK(y.prefix() == "p");
    CHECK(y.first_child().ns() == "urn:p");
    CHECK(y.first_child().next_sibling().ns() == ns::client); // unprefixed: default namespace
    REQUIRE(r.next(ec) == frame_event::element);
    auto f = r.element();
    CHECK(f.is("features", ns::stream)); // prefix declared on the stream header
    CHECK(f.child("bind", "urn:ietf:params:xml:ns:xmpp-bind"));
}

TEST_CASE("reader: take_element hands the tree over, self-contained", "[reader]") {
    reader r;
    // Extra header prefixes (a server's db: style): the taken element must
    // declare the ones it uses, and only those.
    r.feed("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
           "xmlns:q='urn:q' xmlns:unused='urn:unused' version='1.0'>"
           "<iq type='result' id='1'><q:x q:a='v'><y/></q:x></iq><stream:features/><message/>");
    boost::system::error_code ec;
    REQUIRE(r.next(ec) == frame_event::stream_open);
    REQUIRE(r.next(ec) == frame_event::element);
    auto iq = r.take_element();
    CHECK_FALSE(r.element()); // taken
    CHECK(r.take_element().root() == xmpp::xml::node()); // nothing left to take
    REQUIRE(r.next(ec) == frame_event::element);
    auto features = r.take_element();
    REQUIRE(r.next(ec) == frame_event::element);
    CHECK(r.element().name() == "message"); // a fresh tree for the next one
    // The taken trees outlive the reader's later parses, with their namespaces.
    auto root = iq.root();
    CHECK(root.is("iq", ns::client));
    CHECK(root.child("x", "urn:q").child("y", ns::client));
    CHECK(root.child("x", "urn:q").find_attr("q:a") == std::optional<std::string_view>("v"));
    CHECK(features.root().is("features", ns::stream));
    // Written with no stream context, they declare what they inherited.
    CHECK(iq.to_string() == "<iq xmlns='jabber:client' xmlns:q='urn:q' type='result' id='1'><q:x q:a='v'><y/></q:x></iq>");
    CHECK(features.to_string() == "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>");
    // The same as a copy would be.
    reader r2;
    auto copied = first_element(r2, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
                                     "xmlns:q='urn:q' version='1.0'><iq type='result' id='1'><q:x q:a='v'><y/></q:x></iq>");
    CHECK(copied.to_string() == iq.to_string());
}

// A client stream header that also binds the prefix q.
const std::string q_stream_header = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
                                    "xmlns:q='urn:q' version='1.0'>";

TEST_CASE("reader: take_element of trees without prefixes declares only the default namespace", "[reader]") {
    // The reader saw no prefixed name: only the stream's default namespace
    // can be inherited (no walk over the tree). The same result as a copy.
    const std::string header = q_stream_header;
    struct row {
        const char* in;
        const char* out;
    };
    for (const auto& [in, out] : std::vector<row>{
             {"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
              "<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"},
             {"<x xmlns='urn:own'><y/><z xmlns='jabber:client'/></x>", "<x xmlns='urn:own'><y/><z xmlns='jabber:client'/></x>"},
             {"<message xml:lang='en'><body>hi</body></message>",
              "<message xmlns='jabber:client' xml:lang='en'><body>hi</body></message>"},
             {"<presence><q:c/></presence>", "<presence xmlns='jabber:client' xmlns:q='urn:q'><q:c/></presence>"},
         }) {
        INFO(in);
        reader r;
        auto taken = first_element(r, header + in, true);
        CHECK(taken.to_string() == out);
        reader r2;
        CHECK(first_element(r2, header + in).to_string() == out);
        // The names resolve in the taken tree on its own.
        auto root = taken.root();
        CHECK_FALSE(root.ns().empty());
        for (xmpp::xml::node c : children(root)) CHECK_FALSE(c.ns().empty());
    }
}

TEST_CASE("reader: element_ns() is the namespace element().ns() resolves", "[reader]") {
    const std::string header = q_stream_header;
    struct row {
        const char* in;
        const char* ns;
    };
    for (const auto& [in, want] : std::vector<row>{
             {"<iq type='get' id='1'/>", "jabber:client"},                       // inherited from the header
             {"<x xmlns='urn:own' a='1'/>", "urn:own"},                         // its own
             {"<a:x xmlns:a='urn:a'/>", "urn:a"},                               // its own prefix
             {"<q:x/>", "urn:q"},                                               // the header's prefix
             {"<stream:features/>", "http://etherx.jabber.org/streams"},
             {"<y id='2' xmlns='jabber:server' xmlns:b='urn:b'><b:z/></y>", "jabber:server"},
         }) {
        INFO(in);
        reader r;
        r.feed(header + in + "<after xmlns='urn:after'/>");
        boost::system::error_code ec;
        frame_event ev;
        while ((ev = r.next(ec)) != frame_event::element) REQUIRE(ev != frame_event::need_more);
        CHECK(r.element_ns() == want);
        CHECK(r.element_ns() == r.element().ns());
        // Taken, the tree still resolves it on its own.
        auto taken = r.take_element();
        CHECK(taken.root().ns() == want);
        CHECK(r.element_ns().empty()); // nothing current
        REQUIRE(r.next(ec) == frame_event::element);
        CHECK(r.element_ns() == "urn:after"); // each element its own
    }
}

TEST_CASE("reader: server and component streams", "[reader]") {
    reader r;
    r.feed("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
           "xmlns:db='jabber:server:dialback'><db:result from='a' to='b'>key</db:result><presence/>");
    boost::system::error_code ec;
    REQUIRE(r.next(ec) == frame_event::stream_open);
    REQUIRE(r.next(ec) == frame_event::element);
    CHECK(r.element().is("result", "jabber:server:dialback"));
    REQUIRE(r.next(ec) == frame_event::element);
    CHECK(r.element().is("presence", ns::server));

    reader c;
    c.feed("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' "
           "to='comp.example'><handshake>aaee83c26aeeafcbabeabfcbcd50df997e0a2a1e</handshake>");
    REQUIRE(c.next(ec) == frame_event::stream_open);
    REQUIRE(c.next(ec) == frame_event::element);
    CHECK(c.element().is("handshake", ns::component));
}

TEST_CASE("reader: text, entities, CDATA and white space", "[reader]") {
    reader r;
    auto e = first_element(r, hdr + "<message a='x&#9;y\nz' b=\"&quot;'&lt;\"><body>a &amp; b &lt; c &#x263A;"
                                    "<![CDATA[<raw> & ]]> \r\nz</body><s> </s></message>");
    auto m = e.root();
    CHECK(m.attr("a") == "x\ty z"); // literal newline normalized, &#9; kept (XML 1.0 3.3.3)
    CHECK(m.attr("b") == "\"'<");
    CHECK(m.child("body").text() == "a & b < c \u263A<raw> &  \nz");
    CHECK(m.child("s").text() == " "); // white-space-only text is content
    CHECK_FALSE(m.child("body").text_view()); // split in text and CDATA nodes
    CHECK(m.child("s").text_view() == std::string_view(" "));
}

TEST_CASE("reader: namespace and attribute errors", "[reader]") {
    CHECK(error_of(hdr + "<foo:message/>") == stream_errc::bad_namespace_prefix);
    CHECK(error_of(hdr + "<message><x:y/></message>") == stream_errc::bad_namespace_prefix);
    CHECK(error_of(hdr + "<message foo:bar='1'/>") == stream_errc::bad_namespace_prefix);
    CHECK(error_of(hdr + "<message><p:y xmlns:p='urn:p'/><p:z/></message>") == stream_errc::bad_namespace_prefix);
    CHECK(error_of(hdr + "<xmlns:a/>") == stream_errc::bad_namespace_prefix);
    CHECK(error_of(hdr + "<message a='1' a='2'/>") == stream_errc::not_well_formed);
    // Namespaces in XML 1.0 6.3: the same namespaced attribute under two prefixes.
    CHECK(error_of(hdr + "<message xmlns:p='urn:u' xmlns:q='urn:u' p:x='1' q:x='2'/>") == stream_errc::not_well_formed);
    CHECK(error_of(hdr + "<message xmlns:p='urn:u'><b xmlns:q='urn:u' p:x='1' q:x='2'/></message>") ==
          stream_errc::not_well_formed);
    CHECK_FALSE(error_of(hdr + "<message xmlns:p='urn:u' xmlns:q='urn:v' p:x='1' q:x='2'/>"));
    CHECK_FALSE(error_of(hdr + "<message xmlns:p='urn:u' p:x='1' x='2'/>")); // x is in no namespace
    CHECK(error_of(hdr + "<message xmlns:p=''/>") == stream_errc::not_well_formed);
    CHECK(error_of(hdr + "<message xmlns:xml='urn:other'/>") == stream_errc::not_well_formed);
    CHECK(error_of(hdr + "<message xmlns:xmlns='urn:other'/>") == stream_errc::not_well_formed);
    CHECK(error_of(hdr + "<message xmlns:p='http://www.w3.org/2000/xmlns/'/>") == stream_errc::not_well_formed);
    CHECK(error_of(hdr + "<message></iq>") == stream_errc::not_well_formed);
    CHECK(error_of(hdr + "<message b=c/>") == stream_errc::not_well_formed);
    CHECK(error_of(hdr + "<1message/>") == stream_errc::not_well_formed);
    // Names that are not QNames (the first found by fuzz_reader).
    CHECK(error_of(hdr + "<stream:jarbe:es/>") == stream_errc::not_well_formed);
    CHECK(error_of(hdr + "<stream:/>") == stream_errc::not_well_formed);
    CHECK(error_of(hdr + "<:a/>") == stream_errc::not_well_formed);
    CHECK(error_of(hdr + "<a stream:b:c='1'/>") == stream_errc::not_well_formed);
    CHECK(error_of(hdr + "<a b:='1'/>") == stream_errc::not_well_formed);
    CHECK(error_of(hdr + "<ping xmlns:0stream='urn:x'/>") == stream_errc::not_well_formed);
    CHECK(error_of(hdr + "<p:-x xmlns:p='urn:x'/>") == stream_errc::not_well_formed);
    // The stream header itself.
    CHECK(error_of("<stream:stream xmlns='jabber:client'>") == stream_errc::bad_namespace_prefix);
    CHECK(error_of("<stream:stream xmlns:stream='urn:wrong'>") == stream_errc::invalid_namespace);
    CHECK(error_of("<stream xmlns='jabber:client'>") == stream_errc::invalid_namespace);
    CHECK(error_of("<stream:foo xmlns:stream='http://etherx.jabber.org/streams'>") == stream_errc::bad_format);
    CHECK(error_of("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' a='1' a='2'>") ==
          stream_errc::not_well_formed);
    // Allowed: xml: prefix without declaration, xml bound to its own namespace.
    CHECK_FALSE(error_of(hdr + "<message xml:lang='en' xmlns:xml='http://www.w3.org/XML/1998/namespace'/>"));
    CHECK_FALSE(error_of(hdr + "<message xmlns=''><a/></message>"));
}

TEST_CASE("reader: an error sticks until reset, and reset restarts", "[reader]") {
    reader r;
    r.feed(hdr + "<a b='1' b='2'/>");
    boost::system::error_code ec;
    REQUIRE(r.next(ec) == frame_event::stream_open);
    r.next(ec);
    CHECK(ec == stream_errc::not_well_formed);
    CHECK(r.error_text() == "duplicate attribute");
    r.feed("<ok/>");
    r.next(ec);
    CHECK(ec == stream_errc::not_well_formed);
    r.clear();
    r.feed(hdr + "<ok/>");
    CHECK(r.next(ec) == frame_event::stream_open);
    CHECK(r.next(ec) == frame_event::element);
    CHECK(r.element().name() == "ok");
}

TEST_CASE("reader: parse -> write -> parse round trips", "[reader]") {
    for (const char* name : {"client_session.xml", "mam_pubsub.xml", "server_stream.xml"}) {
        INFO(name);
        const std::string data = xmpp::test::read_data(std::string("streams/") + name);
        auto first = elements_of(data);
        REQUIRE(first.size() >= 5);
        // Re-wrap the serialized elements in a stream with the same header.
        reader r;
        r.feed(data);
        boost::system::error_code ec;
        REQUIRE(r.next(ec) == frame_event::stream_open);
        std::string again;
        xmpp::xml::write_stream_header(r.header(), again);
        for (auto& s : first) again += s;
        xmpp::xml::write_stream_close(r.header(), again);
        auto second = elements_of(again);
        CHECK(second == first);
    }
}

TEST_CASE("reader: write of a parsed element is canonical (found by fuzz_reader)", "[reader]") {
    // An empty CDATA section leaves an empty text node; it must not turn <a/> into <a></a>.
    auto once = elements_of(hdr + "<message><body><![CDATA[]]></body><x><![CDATA[]]>y<![CDATA[]]></x></message>");
    REQUIRE(once.size() == 1);
    CHECK(once[0] == "<message><body/><x>y</x></message>");
    CHECK(elements_of(hdr + once[0]) == once);
}

TEST_CASE("reader: headerless elements in a given namespace context", "[reader]") {
    reader r;
    xmpp::xml::stream_header ctx;
    ctx.default_ns = ns::client;
    ctx.prefixes = {{"stream", std::string(ns::stream)}};
    r.set_headerless(ctx);
    r.feed("<message><body>hi</body></message>");
    boost::system::error_code ec;
    REQUIRE(r.next(ec) == frame_event::element);
    CHECK(r.element().is("message", ns::client));
    r.feed("<stream:features/>");
    REQUIRE(r.next(ec) == frame_event::element);
    CHECK(r.element().is("features", ns::stream));
}

TEST_CASE("parse_element: one standalone element", "[reader]") {
    boost::system::error_code ec;
    auto e = xmpp::xml::parse_element("  <iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>\n", ec,
                                      [] {
                                          xmpp::xml::stream_header h;
                                          h.default_ns = ns::client;
                                          return h;
                                      }());
    REQUIRE_FALSE(ec);
    CHECK(e.root().is("iq", ns::client));
    CHECK(e.root().attr("xmlns") == ns::client); // inherited, now declared
    CHECK(e.root().child("ping", "urn:xmpp:ping"));

    auto plain = xmpp::xml::parse_element("<a><b/></a>", ec);
    REQUIRE_FALSE(ec);
    CHECK(plain.root().ns().empty());

    for (const char* bad : {"", "  ", "<a>", "<a/><b/>", "<a/>text", "<a/><b", "text"}) {
        INFO(bad);
        auto none = xmpp::xml::parse_element(bad, ec);
        CHECK(ec == stream_errc::bad_format);
        CHECK_FALSE(none);
    }
    xmpp::xml::parse_element("<a><!-- no --></a>", ec);
    CHECK(ec == stream_errc::restricted_xml);
    xmpp::xml::limits small;
    small.max_element_bytes = 10;
    xmpp::xml::parse_element("<a>0123456789</a>", ec, {}, small);
    CHECK(ec == stream_errc::policy_violation);
}
