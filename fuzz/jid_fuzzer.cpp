// libFuzzer target: parses arbitrary bytes as a JID (RFC 7622) and, when
// that succeeds, checks the invariants of the prepared form.  Also feeds the
// bytes to each part of jid::from_parts, which reaches the PRECIS profiles
// and IDNA without the '@'/'/' splitting.
//
// Built by the `fuzz` option (README "Fuzzing"); give a scratch directory
// first so that new inputs do not land in the seed corpus:
//   build-fuzz/fuzz/fuzz_jid -max_total_time=600 /tmp/fj fuzz/corpus/jid
#include <xmpp/jid.hpp>

#include "detail/precis.hpp" // private: lib/src is on the include path

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace {

void check(bool cond) {
    if (!cond) __builtin_trap();
}

bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        std::size_t n = b < 0x80 ? 0 : b >= 0xC2 && b <= 0xDF ? 1 : b >= 0xE0 && b <= 0xEF ? 2
                                                                 : b >= 0xF0 && b <= 0xF4 ? 3 : 99;
        if (n == 99 || s.size() - i <= n) return false;
        for (std::size_t k = 1; k <= n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        i += n + 1;
    }
    return true;
}

// Parses j.str() again and requires the very same JID back.
void check_idempotent(const xmpp::jid& j) {
    boost::system::error_code ec;
    const xmpp::jid again = xmpp::jid::parse(j.str(), ec);
    check(!ec);
    check(again == j);
    check(again.str() == j.str());
    check(again.localpart() == j.localpart());
    check(again.domainpart() == j.domainpart());
    check(again.resourcepart() == j.resourcepart());
}

void check_valid(const xmpp::jid& j) {
    check(!j.empty());
    check(valid_utf8(j.str()));
    // RFC 7622 3.2.1, 3.3.1, 3.4.1: 1..1023 bytes per present part.
    check(!j.domainpart().empty() && j.domainpart().size() <= 1023);
    check(j.localpart().size() <= 1023);
    check(j.resourcepart().size() <= 1023);
    check(j.is_full() != j.is_bare());
    check(j.is_full() == !j.resourcepart().empty());
    // The stored string is exactly the parts joined.
    std::string joined;
    if (!j.localpart().empty()) joined.append(j.localpart()).push_back('@');
    joined.append(j.domainpart());
    if (!j.resourcepart().empty()) joined.append("/").append(j.resourcepart());
    check(joined == j.str());
    // Splitting must find these parts again (RFC 7622 3.1).
    check(j.localpart().find_first_of("\"&'/:<>@") == std::string_view::npos);
    check(j.domainpart().find_first_of("/@") == std::string_view::npos);
    // The domain is lower case (ASCII part at least) and has no trailing dot.
    check(j.domainpart().back() != '.');
    for (char c : j.domainpart()) check(!(c >= 'A' && c <= 'Z'));
    for (char c : j.localpart()) check(!(c >= 'A' && c <= 'Z'));

    check_idempotent(j);

    boost::system::error_code ec;
    const xmpp::jid bare = j.bare();
    check(bare.is_bare());
    check(xmpp::jid::parse(bare.str(), ec) == bare && !ec);
    const xmpp::jid dom = j.domain();
    check(dom.is_bare() && dom.localpart().empty() && dom.domainpart() == j.domainpart());
    check(xmpp::jid::parse(dom.str(), ec) == dom && !ec);

    const xmpp::jid rebuilt =
        xmpp::jid::from_parts(j.localpart(), j.domainpart(), j.resourcepart(), ec);
    check(!ec && rebuilt == j);
    check(std::hash<xmpp::jid>{}(rebuilt) == std::hash<xmpp::jid>{}(j));
    check((rebuilt <=> j) == 0);
    if (j.is_full()) {
        const xmpp::jid again = bare.with_resource(j.resourcepart(), ec);
        check(!ec && again == j);
    }
}

void check_result(const xmpp::jid& j, const boost::system::error_code& ec) {
    if (ec) {
        check(j.empty());
        check(&ec.category() == &xmpp::jid_category());
        check(ec.value() >= static_cast<int>(xmpp::jid_errc::empty) &&
              ec.value() <= static_cast<int>(xmpp::jid_errc::invalid_utf8));
        return;
    }
    check_valid(j);
}

// The ASCII fast paths must agree with the ICU paths on ASCII input.
void check_fast_paths(std::string_view s) {
    namespace d = xmpp::detail;
    if (!d::is_ascii(s)) return;
    std::string fast, slow;
    const auto f1 = d::username_case_mapped(s, fast);
    const auto s1 = d::username_case_mapped(s, slow, true);
    check(f1 == s1 && fast == slow);
    const auto f2 = d::opaque_string(s, fast);
    const auto s2 = d::opaque_string(s, slow, true);
    check(f2 == s2 && fast == slow);
    // A domain that the ASCII path accepted as LDH labels, UTS #46 accepts unchanged.
    boost::system::error_code ec;
    const xmpp::jid j = xmpp::jid::from_parts("", s, "", ec);
    if (!ec && d::is_ascii(j.domainpart()) && j.domainpart().front() != '[' &&
        j.domainpart().find_first_not_of("0123456789.") != std::string_view::npos) {
        check(d::idna_to_unicode(j.domainpart(), slow) == d::precis_status::ok);
        check(slow == j.domainpart());
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view s(reinterpret_cast<const char*>(data), size);
    boost::system::error_code ec;

    const xmpp::jid j = xmpp::jid::parse(s, ec);
    check_result(j, ec);
    if (!valid_utf8(s)) check(ec == xmpp::jid_errc::invalid_utf8);

    // Each profile on its own, without splitting.
    check_result(xmpp::jid::from_parts(s, "example.com", "", ec), ec);
    check_result(xmpp::jid::from_parts("", s, "", ec), ec);
    check_result(xmpp::jid::from_parts("x", "example.com", s, ec), ec);

    check_fast_paths(s);
    return 0;
}
