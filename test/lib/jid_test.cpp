#include "test_catch.hpp"

// JIDs (RFC 7622) including the examples of RFC 7622 section 3.5 and invalid
// forms; PRECIS (RFC 8264/8265) and IDNA2008 behaviour seen through jid.

#include <xmpp/jid.hpp>

#include "detail/precis.hpp" // private: lib/src is on the include path

#include <algorithm>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include <boost/system/system_error.hpp>

using xmpp::jid;
using xmpp::jid_errc;

namespace {

jid parse_ok(std::string_view s) {
    boost::system::error_code ec;
    jid j = jid::parse(s, ec);
    INFO("input: " << s << " error: " << ec.message());
    REQUIRE_FALSE(ec);
    REQUIRE_FALSE(j.empty());
    return j;
}

boost::system::error_code parse_error(std::string_view s) {
    boost::system::error_code ec;
    const jid j = jid::parse(s, ec);
    INFO("input: " << s << " -> " << j.str());
    CHECK(j.empty());
    return ec;
}

std::string repeat(std::string_view s, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out.append(s);
    return out;
}

// k labels of 63 'a' joined by dots, then the rest.
std::string long_domain(std::size_t labels, std::string_view tail) {
    std::string d;
    for (std::size_t i = 0; i < labels; ++i) {
        if (!d.empty()) d.push_back('.');
        d.append(63, static_cast<char>('a' + i % 26));
    }
    if (!tail.empty()) d.append(".").append(tail);
    return d;
}

struct example {
    const char* input;
    const char* local;
    const char* domain;
    const char* resource;
};

} // namespace

TEST_CASE("RFC 7622 3.5 Table 1: valid JIDs and their prepared parts", "[jid][rfc7622]") {
    const example examples[] = {
        {"juliet@example.com", "juliet", "example.com", ""},
        {"juliet@example.com/foo", "juliet", "example.com", "foo"},
        {"juliet@example.com/foo bar", "juliet", "example.com", "foo bar"},
        {"juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"},
        {"foo\\20bar@example.com", "foo\\20bar", "example.com", ""},
        {"fussball@example.com", "fussball", "example.com", ""},
        {"fu\u00DFball@example.com", "fu\u00DFball", "example.com", ""}, // ß kept (not "ss")
        {"\u03C0@example.com", "\u03C0", "example.com", ""},              // π
        {"\u03A3@example.com/foo", "\u03C3", "example.com", "foo"},       // Σ -> σ
        {"\u03C3@example.com/foo", "\u03C3", "example.com", "foo"},       // σ
        {"\u03C2@example.com/foo", "\u03C2", "example.com", "foo"},       // ς stays final sigma
        {"king@example.com/\u265A", "king", "example.com", "\u265A"},     // ♚ in resource
        {"example.com", "", "example.com", ""},
        {"example.com/foobar", "", "example.com", "foobar"},
        {"a.example.com/b@example.net", "", "a.example.com", "b@example.net"},
    };
    for (const auto& e : examples) {
        INFO("input: " << e.input);
        const jid j = parse_ok(e.input);
        CHECK(j.localpart() == e.local);
        CHECK(j.domainpart() == e.domain);
        CHECK(j.resourcepart() == e.resource);
    }
    // Σ and σ name the same account; ς does not (toLowerCase, not case folding).
    CHECK(parse_ok("\u03A3@example.com") == parse_ok("\u03C3@example.com"));
    CHECK(parse_ok("\u03C2@example.com") != parse_ok("\u03C3@example.com"));
    CHECK(parse_ok("fu\u00DFball@example.com") != parse_ok("fussball@example.com"));
    CHECK(parse_ok("juliet@example.com/foo").str() == "juliet@example.com/foo");
}

TEST_CASE("RFC 7622 3.5 Table 2: invalid JIDs", "[jid][rfc7622]") {
    CHECK(parse_error("\"juliet\"@example.com") == jid_errc::localpart_forbidden_char);
    CHECK(parse_error("foo bar@example.com") == jid_errc::localpart_disallowed);
    CHECK(parse_error("@example.com/") == jid_errc::empty_localpart);
    CHECK(parse_error("henry\u2163@example.com") == jid_errc::localpart_disallowed); // Ⅳ HasCompat
    CHECK(parse_error("\u265A@example.com") == jid_errc::localpart_disallowed);      // ♚ a symbol
    CHECK(parse_error("juliet@") == jid_errc::empty_domainpart);
    CHECK(parse_error("/foobar") == jid_errc::empty_domainpart);
}

TEST_CASE("RFC 7622 erratum 4560: a leading space in the resourcepart is valid", "[jid][rfc7622]") {
    // Table 2 lists "juliet@example.com/ foo" as invalid, but OpaqueString
    // keeps spaces, as the erratum notes.
    const jid j = parse_ok("juliet@example.com/ foo");
    CHECK(j.resourcepart() == " foo");
}

TEST_CASE("splitting order: first '/', then '@' (RFC 7622 3.1)", "[jid]") {
    const jid a = parse_ok("a@b/c/d");
    CHECK(a.localpart() == "a");
    CHECK(a.domainpart() == "b");
    CHECK(a.resourcepart() == "c/d");

    CHECK(parse_error("a@b@c") == jid_errc::domainpart_invalid); // domainpart "b@c"

    const jid b = parse_ok("a/b@example.com"); // '@' after the '/' is in the resource
    CHECK(b.localpart().empty());
    CHECK(b.domainpart() == "a");
    CHECK(b.resourcepart() == "b@example.com");

    const jid c = parse_ok("example.com/@");
    CHECK(c.resourcepart() == "@");
    CHECK(parse_error("@") == jid_errc::empty_localpart);
    CHECK(parse_error("/") == jid_errc::empty_domainpart);
    CHECK(parse_error("example.com/") == jid_errc::empty_resourcepart);
    CHECK(parse_error("user@example.com/") == jid_errc::empty_resourcepart);
}

TEST_CASE("equality: case-insensitive local and domain, case-sensitive resource", "[jid]") {
    CHECK(parse_ok("Juliet@Example.COM/balcony") == parse_ok("juliet@example.com/balcony"));
    CHECK(parse_ok("JULIET@EXAMPLE.COM").str() == "juliet@example.com");
    CHECK(parse_ok("juliet@example.com/Balcony") != parse_ok("juliet@example.com/balcony"));
    CHECK(parse_ok("juliet@example.com/Balcony").resourcepart() == "Balcony");
    CHECK(parse_ok("\u00C9MILE@B\u00DCCHER.de") == parse_ok("\u00E9mile@b\u00FCcher.de"));
    CHECK(parse_ok("juliet@example.com") != parse_ok("juliet@example.com/balcony"));
    CHECK(parse_ok("example.com") != parse_ok("juliet@example.com"));
}

TEST_CASE("hashing agrees with equality", "[jid]") {
    const std::hash<jid> h;
    CHECK(h(parse_ok("Juliet@Example.COM./x")) == h(parse_ok("juliet@example.com/x")));
    CHECK(h(parse_ok("\u03A3@example.com")) == h(parse_ok("\u03C3@example.com")));
    std::unordered_set<jid> set{parse_ok("Juliet@Example.com"), parse_ok("juliet@EXAMPLE.com."),
                                parse_ok("juliet@example.com/r"), parse_ok("romeo@example.com")};
    CHECK(set.size() == 3);
    CHECK(set.count(parse_ok("JULIET@example.COM")) == 1);
    CHECK(set.count(parse_ok("juliet@example.com/R")) == 0);
}

TEST_CASE("ordering: domain, then localpart, then resourcepart", "[jid]") {
    std::vector<jid> v{parse_ok("b@b.example/r"), parse_ok("a.example"), parse_ok("z@a.example"),
                       parse_ok("b@b.example"),   parse_ok("a@b.example"), parse_ok("b@a.example/x")};
    std::sort(v.begin(), v.end());
    std::vector<std::string> got;
    for (const auto& j : v) got.emplace_back(j.str());
    CHECK(got == std::vector<std::string>{"a.example", "b@a.example/x", "z@a.example",
                                          "a@b.example", "b@b.example", "b@b.example/r"});
    CHECK(std::is_eq(parse_ok("A@x") <=> parse_ok("a@x")));
    CHECK(parse_ok("a@x") < parse_ok("a@x/r"));
}

TEST_CASE("width mapping in the localpart only (RFC 8265 3.3.2)", "[jid][precis]") {
    // FULLWIDTH LATIN CAPITAL LETTERS map to ASCII, then to lower case.
    const jid a = parse_ok("\uFF2A\uFF35\uFF2C\uFF29\uFF25\uFF34@example.com");
    CHECK(a.localpart() == "juliet");
    CHECK(a == parse_ok("juliet@example.com"));
    // HALFWIDTH KATAKANA LETTER KA -> KATAKANA LETTER KA.
    CHECK(parse_ok("\uFF76@example.com").localpart() == "\u30AB");
    // OpaqueString has no width mapping: fullwidth letters stay (FREE_PVAL).
    CHECK(parse_ok("example.com/\uFF21\uFF22").resourcepart() == "\uFF21\uFF22");
    // UTS #46 maps fullwidth letters and the ideographic full stop in domains.
    CHECK(parse_ok("\uFF25\uFF38\uFF21\uFF2D\uFF30\uFF2C\uFF25\u3002com").domainpart() ==
          "example.com");
    // Fullwidth forbidden characters become forbidden after the mapping.
    CHECK(parse_error("a\uFF20b@example.com") == jid_errc::localpart_forbidden_char); // ＠
    CHECK(parse_error("a\uFF0Fb@example.com") == jid_errc::localpart_forbidden_char); // ／
    CHECK(parse_error("\uFF02x\uFF02@example.com") == jid_errc::localpart_forbidden_char);
}

TEST_CASE("localpart: UsernameCaseMapped details", "[jid][precis]") {
    // Final sigma in context (Unicode toLowerCase).
    CHECK(parse_ok("\u039F\u0394\u039F\u03A3@x").localpart() == "\u03BF\u03B4\u03BF\u03C2");
    // NFC: e + COMBINING ACUTE ACCENT composes.
    CHECK(parse_ok("e\u0301@x").localpart() == "\u00E9");
    CHECK(parse_ok("e\u0301@x") == parse_ok("\u00E9@x"));
    // Conjoining jamo compose to a syllable (old jamo alone are disallowed).
    CHECK(parse_ok("\u1100\u1161\u11A8@x").localpart() == "\uAC01");
    CHECK(parse_error("\u1100@x") == jid_errc::localpart_disallowed);
    // İ lowercases to i + COMBINING DOT ABOVE in the root locale.
    CHECK(parse_ok("\u0130@x").localpart() == "i\u0307");
    // Each forbidden ASCII character (RFC 7622 3.3.1) that can reach parse().
    for (const char* c : {"\"", "&", "'", ":", "<", ">"}) {
        INFO("char " << c);
        CHECK(parse_error(std::string("a") + c + "b@example.com") ==
              jid_errc::localpart_forbidden_char);
    }
    // Other ASCII punctuation is fine, and space/controls/DEL are not.
    CHECK(parse_ok("a!#$%()*+,-.;=?[\\]^_`{|}~z@x").localpart() == "a!#$%()*+,-.;=?[\\]^_`{|}~z");
    CHECK(parse_error("a\tb@x") == jid_errc::localpart_disallowed);
    CHECK(parse_error(std::string("a\0b@x", 5)) == jid_errc::localpart_disallowed);
    CHECK(parse_error("a\x7F@x") == jid_errc::localpart_disallowed);
    // Non-ASCII space, zero width space (default ignorable), unassigned
    // U+0378, private use, and a noncharacter.
    CHECK(parse_error("a\u00A0b@x") == jid_errc::localpart_disallowed);
    CHECK(parse_error("a\u200Bb@x") == jid_errc::localpart_disallowed);
    CHECK(parse_error("a\u0378@x") == jid_errc::localpart_disallowed);
    CHECK(parse_error("a\uE000@x") == jid_errc::localpart_disallowed);
    CHECK(parse_error("a\uFDD0@x") == jid_errc::localpart_disallowed);
    // Exceptions (RFC 5892 2.6): ARABIC TATWEEL is disallowed.
    CHECK(parse_error("\u0628\u0640\u0628@x") == jid_errc::localpart_disallowed);
}

TEST_CASE("localpart: contextual rules and the bidi rule", "[jid][precis]") {
    // MIDDLE DOT only between two 'l' (RFC 5892 A.3).
    CHECK(parse_ok("l\u00B7l@x").localpart() == "l\u00B7l");
    CHECK(parse_error("a\u00B7b@x") == jid_errc::localpart_disallowed);
    CHECK(parse_error("\u00B7l@x") == jid_errc::localpart_disallowed);
    // ZWJ after a virama (A.2); not elsewhere.
    CHECK(parse_ok("\u0915\u094D\u200D\u0937@x").localpart() == "\u0915\u094D\u200D\u0937");
    CHECK(parse_error("a\u200Db@x") == jid_errc::localpart_disallowed);
    // ZWNJ between joining letters (A.1): BEH ZWNJ BEH; not between Latin.
    CHECK(parse_ok("\u0628\u200C\u0628@x").localpart() == "\u0628\u200C\u0628");
    CHECK(parse_error("a\u200Cb@x") == jid_errc::localpart_disallowed);
    // GREEK KERAIA before a Greek letter (A.4); HEBREW GERESH after Hebrew (A.5).
    CHECK(parse_ok("\u0375\u03B1@x").localpart() == "\u0375\u03B1");
    CHECK(parse_error("\u0375a@x") == jid_errc::localpart_disallowed);
    CHECK(parse_ok("\u05D0\u05F3@x").localpart() == "\u05D0\u05F3");
    CHECK(parse_error("a\u05F3@x") == jid_errc::localpart_disallowed);
    // KATAKANA MIDDLE DOT needs some Hiragana, Katakana or Han (A.7).
    CHECK(parse_ok("\u30AB\u30FB\u30AB@x").localpart() == "\u30AB\u30FB\u30AB");
    CHECK(parse_error("a\u30FBb@x") == jid_errc::localpart_disallowed);
    // Arabic-Indic and Extended Arabic-Indic digits do not mix (A.8, A.9).
    CHECK(parse_ok("\u0628\u0661\u0662@x").localpart() == "\u0628\u0661\u0662");
    CHECK(parse_error("\u0628\u0661\u06F2@x") == jid_errc::localpart_disallowed);
    // The resourcepart has no bidi rule, so this is the context rule alone.
    CHECK(parse_ok("x/\u0661\u0662").resourcepart() == "\u0661\u0662");
    CHECK(parse_error("x/\u0661\u06F2") == jid_errc::resourcepart_disallowed);
    // Bidi rule (RFC 5893): an RTL string may not contain L characters, and
    // an RTL string must not start with a digit.
    CHECK(parse_ok("\u05E9\u05DC\u05D5\u05DD@x").localpart() == "\u05E9\u05DC\u05D5\u05DD");
    CHECK(parse_error("\u05E9a@x") == jid_errc::localpart_disallowed);
    CHECK(parse_error("a\u05E9@x") == jid_errc::localpart_disallowed);
    CHECK(parse_error("1\u05E9@x") == jid_errc::localpart_disallowed);
    CHECK(parse_ok("\u05E91@x").localpart() == "\u05E91");
}

TEST_CASE("resourcepart: OpaqueString details", "[jid][precis]") {
    // Non-ASCII spaces map to U+0020 (RFC 8265 4.2.2).
    CHECK(parse_ok("x/a\u00A0b\u3000c").resourcepart() == "a b c");
    // Case is kept, NFC is applied, symbols and punctuation are fine.
    CHECK(parse_ok("x/Caf\u0065\u0301!").resourcepart() == "Caf\u00E9!");
    CHECK(parse_ok("x/\u2163 \u265A \u00BD").resourcepart() == "\u2163 \u265A \u00BD");
    CHECK(parse_ok("x/ ").resourcepart() == " ");
    // Controls, default ignorables, unassigned, noncharacters are not.
    CHECK(parse_error("x/a\x01") == jid_errc::resourcepart_disallowed);
    CHECK(parse_error("x/a\x7F") == jid_errc::resourcepart_disallowed);
    CHECK(parse_error("x/a\u0085") == jid_errc::resourcepart_disallowed);
    CHECK(parse_error("x/a\u200B") == jid_errc::resourcepart_disallowed);
    CHECK(parse_error("x/a\u0378") == jid_errc::resourcepart_disallowed);
    CHECK(parse_error("x/a\uFFFF") == jid_errc::resourcepart_disallowed);
    CHECK(parse_error("x/a\u200Db") == jid_errc::resourcepart_disallowed); // ZWJ without virama
    // No bidi rule in OpaqueString: mixed directions are fine.
    CHECK(parse_ok("x/a\u05E9").resourcepart() == "a\u05E9");
}

TEST_CASE("domainpart: trailing dot, case, LDH labels", "[jid][domain]") {
    CHECK(parse_ok("juliet@example.com.").domainpart() == "example.com");
    CHECK(parse_ok("juliet@example.com.") == parse_ok("juliet@example.com"));
    CHECK(parse_ok("Example.COM./r").str() == "example.com/r");
    CHECK(parse_ok("localhost").domainpart() == "localhost");
    CHECK(parse_ok("a-b.c0").domainpart() == "a-b.c0");
    CHECK(parse_error("example.com..") == jid_errc::domainpart_invalid);
    CHECK(parse_error(".") == jid_errc::empty_domainpart);
    CHECK(parse_error("a@.") == jid_errc::empty_domainpart);
    CHECK(parse_error(".example.com") == jid_errc::domainpart_invalid);
    CHECK(parse_error("a..b") == jid_errc::domainpart_invalid);
    CHECK(parse_error("-a.example") == jid_errc::domainpart_invalid);
    CHECK(parse_error("a-.example") == jid_errc::domainpart_invalid);
    CHECK(parse_error("a_b.example") == jid_errc::domainpart_invalid);
    CHECK(parse_error("a b.example") == jid_errc::domainpart_invalid);
    CHECK(parse_error("ab--cd.example") == jid_errc::domainpart_invalid); // reserved R-LDH
    CHECK(parse_ok(std::string(63, 'a') + ".example").domainpart().size() == 63 + 8);
    CHECK(parse_error(std::string(64, 'a') + ".example") == jid_errc::domainpart_invalid);
    CHECK(parse_error("example.com:5222") == jid_errc::domainpart_invalid);
}

TEST_CASE("domainpart: IDNA2008 via UTS #46", "[jid][domain]") {
    // U-labels are kept (lower case, NFC); A-labels become U-labels.
    CHECK(parse_ok("user@B\u00FCcher.DE.").domainpart() == "b\u00FCcher.de");
    CHECK(parse_ok("user@xn--bcher-kva.de").domainpart() == "b\u00FCcher.de");
    CHECK(parse_ok("user@XN--BCHER-KVA.de") == parse_ok("user@b\u00FCcher.de"));
    CHECK(parse_ok("fa\u00DF.de").domainpart() == "fa\u00DF.de"); // nontransitional
    CHECK(parse_ok("\u4F8B\u3002\u4E2D\u56FD\u3002").domainpart() == "\u4F8B.\u4E2D\u56FD");
    CHECK(parse_ok("\uFF11.\uFF12.\uFF13.\uFF14").domainpart() == "1.2.3.4"); // fullwidth digits
    // Broken punycode, symbols (IDNA2008 DISALLOWED although UTS #46 takes
    // them), leading combining mark, bidi violation, label too long as an A-label.
    CHECK(parse_error("xn--abc-.de") == jid_errc::domainpart_invalid);
    CHECK(parse_error("xn--n3h.net") == jid_errc::domainpart_invalid); // ☃
    CHECK(parse_error("\u2603.net") == jid_errc::domainpart_invalid);
    CHECK(parse_error("\u0301a.example") == jid_errc::domainpart_invalid);
    CHECK(parse_error("\u05D0a.example") == jid_errc::domainpart_invalid);
    CHECK(parse_error(repeat("\u00FC", 60) + ".example") == jid_errc::domainpart_invalid);
    CHECK(parse_error("a\uFF0Fb.example") == jid_errc::domainpart_invalid); // fullwidth '/'
    CHECK(parse_error("\u00AD") == jid_errc::empty_domainpart); // soft hyphen is ignored
    CHECK(parse_error("a.\u00AD") == jid_errc::domainpart_invalid);
    CHECK(parse_error("\u00FC..de") == jid_errc::domainpart_invalid);
}

TEST_CASE("domain_to_ascii: A-labels for DNS, SNI and certificate checks", "[jid][domain]") {
    boost::system::error_code ec;
    CHECK(domain_to_ascii(parse_ok("user@B\u00FCcher.DE./r"), ec) == "xn--bcher-kva.de");
    CHECK_FALSE(ec);
    CHECK(domain_to_ascii(parse_ok("\u4F8B.\u4E2D\u56FD"), ec) == "xn--fsq.xn--fiqs8s");
    CHECK(domain_to_ascii(parse_ok("fa\u00DF.de"), ec) == "xn--fa-hia.de"); // nontransitional: not "fass.de"
    CHECK_FALSE(ec);
    // ASCII names and IP literals stay as they are, without ICU.
    const auto before = xmpp::detail::precis_icu_calls();
    CHECK(domain_to_ascii(parse_ok("juliet@Example.COM"), ec) == "example.com");
    CHECK(domain_to_ascii(parse_ok("[2001:db8::1]"), ec) == parse_ok("[2001:db8::1]").domainpart());
    CHECK(domain_to_ascii(parse_ok("192.0.2.1"), ec) == "192.0.2.1");
    CHECK(xmpp::detail::precis_icu_calls() == before);
    CHECK_FALSE(ec);
    // Valid as a JID (1023 octets), too long for DNS once A-labels.
    std::string long_name;
    for (int i = 0; i < 10; ++i) long_name += repeat("\u00FC", 20) + ".";
    long_name += "de";
    CHECK(domain_to_ascii(parse_ok(long_name), ec).empty());
    CHECK(ec == jid_errc::domainpart_invalid);
    CHECK(domain_to_ascii(jid(), ec).empty());
    CHECK(ec == jid_errc::domainpart_invalid);
}

TEST_CASE("domainpart: IP literals", "[jid][domain]") {
    CHECK(parse_ok("user@192.0.2.1/r").domainpart() == "192.0.2.1");
    CHECK(parse_ok("192.0.2.1.").domainpart() == "192.0.2.1");
    CHECK(parse_ok("[::1]").domainpart() == "[::1]");
    CHECK(parse_ok("user@[2001:DB8:0:0:0:0:0:1]/r").domainpart() == "[2001:db8::1]");
    CHECK(parse_ok("[2001:db8::1]") == parse_ok("[2001:0db8:0000::0001]"));
    CHECK(parse_ok("[::FFFF:192.0.2.1]").domainpart() == "[::ffff:192.0.2.1]");
    CHECK(parse_error("256.1.1.1") == jid_errc::invalid_ip_literal);
    CHECK(parse_error("01.2.3.4") == jid_errc::invalid_ip_literal);
    CHECK(parse_error("1.2.3") == jid_errc::invalid_ip_literal);
    CHECK(parse_error("1.2.3.4.5") == jid_errc::invalid_ip_literal);
    CHECK(parse_error("[::1") == jid_errc::invalid_ip_literal);
    CHECK(parse_error("[]") == jid_errc::invalid_ip_literal);
    CHECK(parse_error("[1.2.3.4]") == jid_errc::invalid_ip_literal);
    CHECK(parse_error("[fe80::1%eth0]") == jid_errc::invalid_ip_literal);
    CHECK(parse_error("[v1.x]") == jid_errc::invalid_ip_literal); // IPvFuture
    CHECK(parse_error("[::1].") == jid_errc::invalid_ip_literal);
    CHECK(parse_error("[::1]x") == jid_errc::invalid_ip_literal);
    CHECK(parse_error(std::string("[::1\0:2]", 8)) == jid_errc::invalid_ip_literal);
    CHECK(parse_error("[::\uFF11]") == jid_errc::invalid_ip_literal);
}

TEST_CASE("1023-byte limit for each part, after preparation", "[jid][limits]") {
    const std::string domain1023 = long_domain(16, "");
    REQUIRE(domain1023.size() == 1023);
    CHECK(parse_ok(domain1023).domainpart().size() == 1023);
    const std::string domain1024 = long_domain(15, std::string(31, 'x') + "." + std::string(32, 'y'));
    REQUIRE(domain1024.size() == 1024);
    CHECK(parse_error(domain1024) == jid_errc::domainpart_too_long);
    // A trailing dot does not count.
    CHECK(parse_ok(domain1023 + ".").domainpart().size() == 1023);
    // Non-ASCII domain (ICU path): "bücher" is 7 bytes.
    const std::string idn1023 = "b\u00FCcher." + long_domain(15, std::string(55, 'z'));
    REQUIRE(idn1023.size() == 1023);
    CHECK(parse_ok(idn1023).domainpart().size() == 1023);
    CHECK(parse_error(idn1023 + "z") == jid_errc::domainpart_too_long);

    CHECK(parse_ok(std::string(1023, 'a') + "@x").localpart().size() == 1023);
    CHECK(parse_error(std::string(1024, 'a') + "@x") == jid_errc::localpart_too_long);
    // 511 x é (2 bytes) + 1 = 1023; decomposed input is longer but NFC shrinks it.
    CHECK(parse_ok(repeat("e\u0301", 511) + "a@x").localpart().size() == 1023);
    CHECK(parse_error(repeat("e\u0301", 512) + "@x") == jid_errc::localpart_too_long);

    CHECK(parse_ok("x/" + std::string(1023, 'r')).resourcepart().size() == 1023);
    CHECK(parse_error("x/" + std::string(1024, 'r')) == jid_errc::resourcepart_too_long);
    // U+3000 (3 bytes) maps to U+0020 (1 byte): 3067 input bytes are fine.
    CHECK(parse_ok("x/a" + repeat("\u3000", 1022)).resourcepart().size() == 1023);
    CHECK(parse_error("x/a" + repeat("\u3000", 1023)) == jid_errc::resourcepart_too_long);

    // All three at their limit at once.
    const jid big = parse_ok(std::string(1023, 'l') + "@" + domain1023 + "/" + std::string(1023, 'r'));
    CHECK(big.str().size() == 3 * 1023 + 2);
    CHECK(big.localpart().size() == 1023);
    CHECK(big.resourcepart().size() == 1023);
}

TEST_CASE("invalid UTF-8 is its own error", "[jid]") {
    for (const std::string& s : {std::string("a@b\xC3(/c"),         // bad continuation
                                 std::string("a@example.com/\xC3"), // truncated
                                 std::string("\xC0\xAF@x"),         // overlong '/'
                                 std::string("x/\xE0\x80\xAF"),     // overlong 3-byte
                                 std::string("x/\xED\xA0\x80"),     // surrogate U+D800
                                 std::string("x/\xF4\x90\x80\x80"), // above U+10FFFF
                                 std::string("\x80@x"),             // stray continuation
                                 std::string("x\xFF")}) {
        INFO("input bytes: " << s.size());
        CHECK(parse_error(s) == jid_errc::invalid_utf8);
    }
    boost::system::error_code ec;
    jid::from_parts("\xC3", "example.com", "", ec);
    CHECK(ec == jid_errc::invalid_utf8);
    jid::from_parts("", "\xC3", "", ec);
    CHECK(ec == jid_errc::invalid_utf8);
    jid::from_parts("", "example.com", "\xC3", ec);
    CHECK(ec == jid_errc::invalid_utf8);
}

TEST_CASE("every jid_errc is produced by some input", "[jid][errors]") {
    struct bad {
        std::string input;
        jid_errc expected;
    };
    const std::vector<bad> cases{
        {"", jid_errc::empty},
        {"@example.com", jid_errc::empty_localpart},
        {"juliet@", jid_errc::empty_domainpart},
        {"example.com/", jid_errc::empty_resourcepart},
        {std::string(1024, 'a') + "@example.com", jid_errc::localpart_too_long},
        {long_domain(17, ""), jid_errc::domainpart_too_long},
        {"example.com/" + std::string(1024, 'r'), jid_errc::resourcepart_too_long},
        {"<juliet>@example.com", jid_errc::localpart_forbidden_char},
        {"foo bar@example.com", jid_errc::localpart_disallowed},
        {"example.com/\x01", jid_errc::resourcepart_disallowed},
        {"a@b@c", jid_errc::domainpart_invalid},
        {"[::1", jid_errc::invalid_ip_literal},
        {"a@b\xC3(/c", jid_errc::invalid_utf8},
    };
    std::set<int> seen;
    for (const auto& c : cases) {
        INFO("expected " << xmpp::make_error_code(c.expected).message());
        const auto ec = parse_error(c.input);
        CHECK(ec == c.expected);
        seen.insert(ec.value());
    }
    for (int v = static_cast<int>(jid_errc::empty); v <= static_cast<int>(jid_errc::invalid_utf8); ++v)
        CHECK(seen.count(v) == 1);
}

TEST_CASE("jid_category names and messages", "[jid][errors]") {
    CHECK(std::string(xmpp::jid_category().name()) == "xmpp.jid");
    const boost::system::error_code ec = jid_errc::localpart_forbidden_char;
    CHECK(&ec.category() == &xmpp::jid_category());
    CHECK(ec.message().find("forbidden") != std::string::npos);
    std::set<std::string> messages;
    for (int v = static_cast<int>(jid_errc::empty); v <= static_cast<int>(jid_errc::invalid_utf8); ++v)
        messages.insert(xmpp::make_error_code(static_cast<jid_errc>(v)).message());
    CHECK(messages.size() == 13); // each kind says something different
    CHECK(xmpp::make_error_code(jid_errc::domainpart_too_long).message().find("1023") !=
          std::string::npos);
}

TEST_CASE("throwing parse", "[jid]") {
    CHECK(jid::parse("Juliet@Example.com").str() == "juliet@example.com");
    try {
        (void)jid::parse("a@b@c");
        FAIL("no exception");
    } catch (const boost::system::system_error& e) {
        CHECK(e.code() == jid_errc::domainpart_invalid);
    }
    CHECK_THROWS_AS(jid::parse(""), boost::system::system_error);
}

TEST_CASE("bare(), domain(), with_resource()", "[jid]") {
    const jid full = parse_ok("Juliet@Example.com/Balcony");
    CHECK(full.is_full());
    CHECK_FALSE(full.is_bare());

    const jid bare = full.bare();
    CHECK(bare.str() == "juliet@example.com");
    CHECK(bare.localpart() == "juliet");
    CHECK(bare.domainpart() == "example.com");
    CHECK(bare.resourcepart().empty());
    CHECK(bare.is_bare());
    CHECK_FALSE(bare.is_full());
    CHECK(bare == parse_ok("juliet@example.com"));
    CHECK(bare.bare() == bare);

    const jid dom = full.domain();
    CHECK(dom.str() == "example.com");
    CHECK(dom.localpart().empty());
    CHECK(dom.domainpart() == "example.com");
    CHECK(dom.is_bare());
    CHECK(dom == parse_ok("example.com"));
    CHECK(parse_ok("example.com/r").bare() == dom);

    boost::system::error_code ec;
    const jid phone = bare.with_resource("Phone", ec);
    CHECK_FALSE(ec);
    CHECK(phone.str() == "juliet@example.com/Phone");
    CHECK(phone.resourcepart() == "Phone");
    CHECK(full.with_resource("a/b", ec).str() == "juliet@example.com/a/b");
    CHECK(dom.with_resource("x\u3000y", ec).str() == "example.com/x y");
    CHECK_FALSE(ec);
    CHECK(bare.with_resource("", ec).empty());
    CHECK(ec == jid_errc::empty_resourcepart);
    CHECK(bare.with_resource("\x01", ec).empty());
    CHECK(ec == jid_errc::resourcepart_disallowed);
    CHECK(jid{}.with_resource("r", ec).empty());
    CHECK(ec == jid_errc::empty_domainpart);

    const jid none;
    CHECK(none.empty());
    CHECK_FALSE(none.is_bare());
    CHECK_FALSE(none.is_full());
    CHECK(none.bare().empty());
    CHECK(none.domain().empty());
    CHECK(none.str().empty());
}

TEST_CASE("from_parts prepares each part without splitting", "[jid]") {
    boost::system::error_code ec;
    const jid j = jid::from_parts("Juliet", "Example.COM.", "Balcony", ec);
    CHECK_FALSE(ec);
    CHECK(j == parse_ok("juliet@example.com/Balcony"));
    CHECK(jid::from_parts("", "example.com", "", ec) == parse_ok("example.com"));
    CHECK(jid::from_parts("a", "b", "c/d@e", ec).resourcepart() == "c/d@e");
    CHECK(jid::from_parts("a@b", "example.com", "", ec).empty());
    CHECK(ec == jid_errc::localpart_forbidden_char);
    CHECK(jid::from_parts("a/b", "example.com", "", ec).empty());
    CHECK(ec == jid_errc::localpart_forbidden_char);
    CHECK(jid::from_parts("a", "", "r", ec).empty());
    CHECK(ec == jid_errc::empty_domainpart);
    CHECK(jid::from_parts("a", "b/c", "", ec).empty());
    CHECK(ec == jid_errc::domainpart_invalid);
    CHECK(jid::from_parts("a", "b@c", "", ec).empty());
    CHECK(ec == jid_errc::domainpart_invalid);
}

TEST_CASE("ASCII fast path makes no ICU call; non-ASCII does", "[jid][precis]") {
    using xmpp::detail::precis_icu_calls;
    const auto before = precis_icu_calls();
    boost::system::error_code ec;
    for (const char* s : {"Juliet@Example.COM./Some Resource", "juliet@example.com",
                          "[2001:db8::1]", "user@192.0.2.1/r", "a-b.c0/x y", "foo bar@example.com",
                          "\"juliet\"@example.com", "a@b@c", "example.com/\x01", "-a.example"}) {
        (void)jid::parse(s, ec);
    }
    (void)jid::from_parts("Romeo", "Example.net", "Orchard", ec);
    (void)parse_ok("juliet@example.com").bare().with_resource("r", ec);
    CHECK(precis_icu_calls() == before);

    (void)parse_ok("\u03C0@example.com");
    const auto after_local = precis_icu_calls();
    CHECK(after_local > before);
    (void)parse_ok("example.com/\u265A");
    const auto after_resource = precis_icu_calls();
    CHECK(after_resource > after_local);
    (void)parse_ok("b\u00FCcher.de");
    const auto after_domain = precis_icu_calls();
    CHECK(after_domain > after_resource);
    // An ASCII "xn--" label needs IDNA to be validated and converted.
    (void)parse_ok("xn--bcher-kva.de");
    CHECK(precis_icu_calls() > after_domain);
}

TEST_CASE("prepared form is stable: parsing str() again gives the same JID", "[jid]") {
    for (const char* s :
         {"\u039F\u0394\u039F\u03A3@Example.COM./R", "\uFF2A@\uFF25\uFF38\u3002com/\uFF21",
          "e\u0301@xn--bcher-kva.de/e\u0301", "[::FFFF:1.2.3.4]/x", "\u0130@x", "x/a\u00A0b",
          "\u1100\u1161@x", "l\u00B7l@\u00FC.example"}) {
        const jid j = parse_ok(s);
        const jid again = parse_ok(j.str());
        CHECK(again == j);
        CHECK(again.str() == j.str());
        CHECK(again.localpart() == j.localpart());
        CHECK(again.domainpart() == j.domainpart());
        CHECK(again.resourcepart() == j.resourcepart());
    }
}

TEST_CASE("ASCII fast paths agree with the ICU paths", "[precis]") {
    namespace d = xmpp::detail;
    // Fuzzer finding "?\0": on failure the fast path left "?" in its output
    // while the ICU path left it empty; failures now always leave it empty.
    for (const std::string& s :
         {std::string("?\0", 2), std::string("Juliet"), std::string("a b"), std::string("\x7F"),
          std::string("MiXeD!#~"), std::string(" lead"), std::string("\t"), std::string("\"&'")}) {
        INFO("input bytes: " << s.size());
        std::string fast, slow;
        const auto f1 = d::username_case_mapped(s, fast);
        const auto s1 = d::username_case_mapped(s, slow, true);
        CHECK(f1 == s1);
        CHECK(fast == slow);
        const auto f2 = d::opaque_string(s, fast);
        const auto s2 = d::opaque_string(s, slow, true);
        CHECK(f2 == s2);
        CHECK(fast == slow);
    }
    std::string out = "junk";
    CHECK(d::username_case_mapped(std::string("?\0", 2), out) == d::precis_status::disallowed);
    CHECK(out.empty());
    CHECK(d::username_case_mapped("Juliet", out, true) == d::precis_status::ok);
    CHECK(out == "juliet");
    CHECK(d::opaque_string("a\x01", out) == d::precis_status::disallowed);
    CHECK(out.empty());
    // UTS #46 leaves a valid LDH name as it is.
    CHECK(d::idna_to_unicode("a-b.example.com", out) == d::precis_status::ok);
    CHECK(out == "a-b.example.com");
}
