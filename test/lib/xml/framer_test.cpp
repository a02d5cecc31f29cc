// Tests of lib/src/xml/framer.cpp: framing of realistic streams split at every
// position, RFC 6120 section 11 restrictions and the limits.
#include "alloc_counter.hpp"
#include "test_data.hpp"

#include <xmpp/xml/framer.hpp>
#include <xmpp/xml/reader.hpp>

#include <string>
#include <utility>
#include <vector>

using xmpp::stream_errc;
using xmpp::xml::frame_event;
using xmpp::xml::framer;

namespace {

struct outcome {
    std::vector<std::pair<frame_event, std::string>> events;
    boost::system::error_code error;
};

// Drains every event the framer can produce from what it holds.
void drain(framer& f, outcome& out) {
    while (!out.error) {
        boost::system::error_code ec;
        auto ev = f.next(ec);
        if (ec) {
            out.error = ec;
            return;
        }
        if (ev == frame_event::need_more) return;
        auto fr = f.frame();
        out.events.emplace_back(ev, std::string(fr.data(), fr.size()));
    }
}

outcome frame_chunks(const std::string& data, const std::vector<std::size_t>& cuts, xmpp::xml::limits l = {}) {
    framer f(l);
    outcome out;
    std::size_t prev = 0;
    for (std::size_t c : cuts) {
        f.feed(std::string_view(data).substr(prev, c - prev));
        drain(f, out);
        prev = c;
    }
    f.feed(std::string_view(data).substr(prev));
    drain(f, out);
    return out;
}

outcome frame_all(const std::string& data, xmpp::xml::limits l = {}) { return frame_chunks(data, {}, l); }

boost::system::error_code error_of(const std::string& data, xmpp::xml::limits l = {}) {
    auto whole = frame_all(data, l);
    // The verdict must not depend on how the input is split.
    std::vector<std::size_t> bytes;
    for (std::size_t i = 1; i < data.size(); ++i) bytes.push_back(i);
    auto one_by_one = frame_chunks(data, bytes, l);
    CHECK(one_by_one.error == whole.error);
    return whole.error;
}

const std::string hdr = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
                        "to='example.com' version='1.0'>";

} // namespace

TEST_CASE("framer: realistic streams split at every position give the same frames", "[framer]") {
    for (const char* name : {"client_session.xml", "mam_pubsub.xml", "server_stream.xml"}) {
        INFO(name);
        const std::string data = xmpp::test::read_data(std::string("streams/") + name);
        const auto ref = frame_all(data);
        REQUIRE_FALSE(ref.error);
        REQUIRE(ref.events.size() >= 5);
        CHECK(ref.events.front().first == frame_event::stream_open);
        CHECK(ref.events.back().first == frame_event::stream_close);
        for (std::size_t i = 1; i + 1 < ref.events.size(); ++i) {
            CHECK(ref.events[i].first == frame_event::element);
            CHECK(ref.events[i].second.front() == '<');
            CHECK(ref.events[i].second.back() == '>');
        }
        for (std::size_t cut = 1; cut < data.size(); ++cut) {
            auto got = frame_chunks(data, {cut});
            if (got.events != ref.events || got.error) {
                FAIL("different result when split at " << cut);
            }
        }
        // Two cuts around each position, and one byte at a time.
        for (std::size_t cut = 1; cut + 7 < data.size(); cut += 3) {
            auto got = frame_chunks(data, {cut, cut + 1, cut + 7});
            REQUIRE(got.events == ref.events);
        }
        std::vector<std::size_t> bytes;
        for (std::size_t i = 1; i < data.size(); ++i) bytes.push_back(i);
        CHECK(frame_chunks(data, bytes).events == ref.events);
    }
}

TEST_CASE("framer: the frames of a stream", "[framer]") {
    const std::string data = "<?xml version='1.0' encoding='utf-8'?>\n" + hdr +
                             " \n\t<message to='a@b' x=\"'>&lt;\" y='\"/>'><body>1 &gt; 0 &amp; 2>1 "
                             "<![CDATA[</message><x/>]]></body></message>\r\n<iq/>  </stream:stream>";
    auto out = frame_all(data);
    REQUIRE_FALSE(out.error);
    REQUIRE(out.events.size() == 4);
    CHECK(out.events[0].first == frame_event::stream_open);
    CHECK(out.events[0].second == hdr);
    CHECK(out.events[1].second ==
          "<message to='a@b' x=\"'>&lt;\" y='\"/>'><body>1 &gt; 0 &amp; 2>1 <![CDATA[</message><x/>]]></body></message>");
    CHECK(out.events[2].second == "<iq/>");
    CHECK(out.events[3].first == frame_event::stream_close);
    CHECK(out.events[3].second == "</stream:stream>");
}

TEST_CASE("framer: restart keeps input that follows the consumed frame", "[framer]") {
    framer f;
    f.feed(hdr + "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" + hdr + "<a/>");
    boost::system::error_code ec;
    CHECK(f.next(ec) == frame_event::stream_open);
    CHECK(f.next(ec) == frame_event::element);
    CHECK(f.buffered() == hdr.size() + 4);
    f.reset();
    CHECK(f.next(ec) == frame_event::stream_open);
    CHECK(f.next(ec) == frame_event::element);
    CHECK(std::string(f.frame().data(), f.frame().size()) == "<a/>");
    CHECK(f.next(ec) == frame_event::need_more);
    CHECK_FALSE(ec);

    // clear() drops it (what STARTTLS needs: no plaintext may survive the handshake).
    framer g;
    g.feed(hdr + "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><injected/>");
    CHECK(g.next(ec) == frame_event::stream_open);
    CHECK(g.next(ec) == frame_event::element);
    CHECK(g.buffered() == 11);
    g.clear();
    CHECK(g.buffered() == 0);
    CHECK(g.next(ec) == frame_event::need_more);
    CHECK_FALSE(ec);
}

TEST_CASE("framer: restricted XML is rejected with restricted-xml (RFC 6120 11.1)", "[framer]") {
    const std::pair<const char*, std::string> cases[] = {
        {"comment between elements", hdr + "<!-- hi -->"},
        {"comment inside an element", hdr + "<message><!-- hi --></message>"},
        {"comment before the header", "<!-- hi -->" + hdr},
        {"processing instruction", hdr + "<message><?php echo 1; ?></message>"},
        {"processing instruction between elements", hdr + "<?xml-stylesheet href='a'?>"},
        {"second XML declaration", "<?xml version='1.0'?><?xml version='1.0'?>" + hdr},
        {"DOCTYPE", "<!DOCTYPE stream [<!ENTITY x 'y'>]>" + hdr},
        {"DTD declaration in content", hdr + "<a><!ENTITY x 'y'></a>"},
        {"undefined entity", hdr + "<message><body>&nbsp;</body></message>"},
        {"undefined entity in attribute", hdr + "<message to='&xxe;'/>"},
        {"long entity name", hdr + "<a>&aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;</a>"},
    };
    for (auto& [what, data] : cases) {
        INFO(what);
        CHECK(error_of(data) == stream_errc::restricted_xml);
    }
}

TEST_CASE("framer: malformed XML is rejected with not-well-formed", "[framer]") {
    const std::pair<const char*, std::string> cases[] = {
        {"'<' in an attribute value", hdr + "<a b='<'/>"},
        {"bare '&'", hdr + "<a>fish & chips</a>"},
        {"'&' with no ';'", hdr + "<a>&amp</a> "},
        {"character reference to NUL", hdr + "<a>&#0;</a>"},
        {"character reference to a surrogate", hdr + "<a>&#xD800;</a>"},
        {"character reference beyond Unicode", hdr + "<a>&#x110000;</a>"},
        {"character reference to U+FFFE", hdr + "<a>&#65534;</a>"},
        {"empty character reference", hdr + "<a>&#;</a>"},
        {"hex digits in a decimal reference", hdr + "<a>&#1F;</a>"},
        {"control character", hdr + "<a>\x01</a>"},
        {"control character in an attribute", hdr + "<a b='\x1f'/>"},
        {"NUL byte", hdr + std::string("<a>\0</a>", 8)},
        {"']]>' in text", hdr + "<a>x]]>y</a>"},
        {"invalid UTF-8 lead byte", hdr + "<a>\xff</a>"},
        {"overlong UTF-8", hdr + "<a>\xc0\xaf</a>"},
        {"UTF-8 surrogate", hdr + "<a>\xed\xa0\x80</a>"},
        {"UTF-8 beyond U+10FFFF", hdr + "<a>\xf4\x90\x80\x80</a>"},
        {"truncated UTF-8 followed by ASCII", hdr + "<a>\xe6\x97x</a>"},
        {"U+FFFF in UTF-8", hdr + "<a>\xef\xbf\xbf</a>"},
        {"invalid UTF-8 in a name", hdr + "<a\xff/>"},
        {"invalid UTF-8 in an attribute", hdr + "<a b='\xc3'/>"},
        {"'<' in a tag", hdr + "<a <b/>"},
        {"'/' in a tag", hdr + "<a / b/>"},
        {"'<' followed by a space", hdr + "< a/>"},
        {"end tag at stream level with no header", "</stream:stream>"},
        {"text before the header", "hello" + hdr},
        {"wrong stream end tag", hdr + "</stream:foo>"},
        {"data after the stream end", hdr + "</stream:stream><a/>"},
        {"comment-like markup", hdr + "<a><!-x></a>"},
        {"malformed CDATA start", hdr + "<a><![CDATX[x]]></a>"},
        {"quote in an end tag", hdr + "<a></a'>"},
        {"NUL in the XML declaration (found by fuzz_reader)",
         std::string("<?xml version='1.0' encodin\xd6\0\0'?>", 34) + hdr},
        {"control character in the XML declaration", "<?xml version='1.0'\x01?>" + hdr},
    };
    for (auto& [what, data] : cases) {
        INFO(what);
        CHECK(error_of(data) == stream_errc::not_well_formed);
    }
}

TEST_CASE("framer: other stream errors", "[framer]") {
    CHECK(error_of(hdr + "hello") == stream_errc::bad_format);
    CHECK(error_of(hdr + "<![CDATA[x]]>") == stream_errc::bad_format);
    CHECK(error_of("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>") == stream_errc::bad_format);
    CHECK(error_of("<?xml version='1.0' encoding='ISO-8859-1'?>" + hdr) == stream_errc::unsupported_encoding);
    CHECK(error_of("<?xml version='1.0' encoding=\"UTF-16\"?>" + hdr) == stream_errc::unsupported_encoding);
    CHECK_FALSE(error_of("<?xml version='1.0' encoding=\"Utf-8\"?>" + hdr));
}

TEST_CASE("framer: limits give policy-violation and bound memory", "[framer]") {
    xmpp::xml::limits l;
    l.max_element_bytes = 1000;
    l.max_depth = 8;
    l.max_attributes = 5;

    CHECK_FALSE(error_of(hdr + "<a>" + std::string(1000 - 7, 'x') + "</a>", l));
    CHECK(error_of(hdr + "<a>" + std::string(1000 - 6, 'x') + "</a>", l) == stream_errc::policy_violation);
    CHECK_FALSE(error_of(hdr + "<a><a><a><a><a><a><a><a/></a></a></a></a></a></a></a>", l));
    CHECK(error_of(hdr + "<a><a><a><a><a><a><a><a><a/></a></a></a></a></a></a></a></a>", l) ==
          stream_errc::policy_violation);
    CHECK_FALSE(error_of(hdr + "<a a='1' b='2' c='3' d='4' e='5'/>", l));
    CHECK(error_of(hdr + "<a a='1' b='2' c='3' d='4' e='5' f='6'/>", l) == stream_errc::policy_violation);
    CHECK(error_of(std::string("<stream:stream a='") + std::string(2000, 'x') + "'>", l) ==
          stream_errc::policy_violation);

    // Bytes past the limit are never judged: a syntax error after it gives
    // policy-violation whether the element arrives whole or byte by byte
    // (found by fuzz_reader).
    CHECK(error_of(hdr + "<a>" + std::string(1200, 'x') + "</strea\r\0</a>", l) == stream_errc::policy_violation);
    CHECK(error_of(hdr + "<a>" + std::string(995, 'x') + "&amp;</a>", l) == stream_errc::policy_violation);
    CHECK(error_of(hdr + "<a>" + std::string(990, 'x') + "&amp;</a>", l) == stream_errc::policy_violation);
    CHECK_FALSE(error_of(hdr + "<a>" + std::string(988, 'x') + "&amp;</a>", l));

    // An endless element: the error comes as soon as the limit is passed and
    // the buffer never holds much more than the limit.
    framer f(l);
    f.feed(hdr + "<message><body>");
    boost::system::error_code ec;
    REQUIRE(f.next(ec) == frame_event::stream_open);
    std::size_t fed = 0;
    while (!ec && fed < 100000) {
        f.feed(std::string(100, 'x'));
        fed += 100;
        f.next(ec);
        CHECK(f.capacity() <= 2 * l.max_element_bytes + 256);
    }
    CHECK(ec == stream_errc::policy_violation);
    CHECK(fed < 1100);
    // Once failed, the framer stays failed until reset.
    f.feed("</body></message>");
    CHECK(f.next(ec) == frame_event::need_more);
    CHECK(ec == stream_errc::policy_violation);
    CHECK_FALSE(f.error_text().empty());

    // White-space keepalives never accumulate.
    framer k(l);
    k.feed(hdr);
    REQUIRE(k.next(ec) == frame_event::stream_open);
    for (int i = 0; i < 10000; ++i) {
        k.feed(" \n");
        CHECK(k.next(ec) == frame_event::need_more);
    }
    CHECK_FALSE(ec);
    CHECK(k.capacity() < 4096);
}

TEST_CASE("framer and reader: no operator new per element in the steady state", "[framer]") {
    const std::string msg = "<message to='x@y' type='chat' id='a1'><body>hello &amp; \xc3\xa9</body>"
                            "<active xmlns='http://jabber.org/protocol/chatstates'/></message>";
    std::string chunk;
    while (chunk.size() + msg.size() <= 4096) chunk += msg;
    boost::system::error_code ec;

    framer f;
    f.feed(hdr);
    REQUIRE(f.next(ec) == frame_event::stream_open);
    xmpp::xml::reader r;
    r.feed(hdr);
    REQUIRE(r.next(ec) == frame_event::stream_open);
    auto pump = [&](std::size_t rounds) {
        std::size_t elements = 0;
        for (std::size_t i = 0; i < rounds; ++i) {
            f.feed(chunk);
            while (f.next(ec) == frame_event::element) ++elements;
            r.feed(chunk);
            while (r.next(ec) == frame_event::element) elements += r.element().name() == "message";
        }
        REQUIRE_FALSE(ec);
        return elements;
    };
    pump(5); // warm up: buffers and scratch vectors reach their size
    const auto before = xmpp::test::allocations.load();
    const auto elements = pump(200);
    CHECK(elements > 10000);
    CHECK(xmpp::test::allocations.load() - before == 0);
    // The counter is live: a copy of an element allocates.
    r.feed(msg);
    REQUIRE(r.next(ec) == frame_event::element);
    auto kept = xmpp::xml::element::copy_of(r.element());
    CHECK(xmpp::test::allocations.load() - before > 0);
}

TEST_CASE("framer: no allocation once the buffer has grown", "[framer]") {
    framer f;
    f.feed(hdr);
    boost::system::error_code ec;
    REQUIRE(f.next(ec) == frame_event::stream_open);
    const std::string msg = "<message to='x@y'><body>hello</body></message>";
    std::size_t cap = 0;
    for (int round = 0; round < 1000; ++round) {
        auto buf = f.prepare(4096);
        std::size_t n = 0;
        while (n + msg.size() <= 4096) {
            std::copy(msg.begin(), msg.end(), buf.begin() + static_cast<std::ptrdiff_t>(n));
            n += msg.size();
        }
        f.commit(n);
        while (f.next(ec) == frame_event::element) {}
        REQUIRE_FALSE(ec);
        if (round == 10) cap = f.capacity();
        if (round > 10) REQUIRE(f.capacity() == cap);
    }
}

TEST_CASE("framer: headerless mode frames one element per message", "[framer]") {
    framer f;
    f.set_headerless(true);
    f.feed("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>");
    boost::system::error_code ec;
    CHECK(f.next(ec) == frame_event::element);
    f.feed("<message><body>x</body></message>");
    CHECK(f.next(ec) == frame_event::element);
    f.feed("</close>");
    CHECK(f.next(ec) == frame_event::need_more);
    CHECK(ec == stream_errc::not_well_formed);
}
