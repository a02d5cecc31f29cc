// PRECIS (RFC 8264) profiles UsernameCaseMapped and OpaqueString (RFC 8265),
// and IDNA2008 / UTS #46 domain name preparation, on ICU.  Private to the
// library: jid.cpp is the only user, tests reach it by relative path.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace xmpp::detail {

/// Outcome of a PRECIS profile or of IDNA preparation.
enum class precis_status {
    ok,
    invalid_utf8, ///< input is not well-formed UTF-8 (RFC 3629)
    empty,        ///< the result would be the empty string (RFC 8265 3.3.3, 4.2.3)
    disallowed,   ///< a code point, a context rule or the bidi rule rejected the string
};

/// True when s is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates,
/// nothing above U+10FFFF).  Makes no ICU call.
bool is_valid_utf8(std::string_view s) noexcept;

/// True when every byte of s is below 0x80.
bool is_ascii(std::string_view s) noexcept;

/// Enforces the UsernameCaseMapped profile (RFC 8265 3.3.2): width mapping,
/// toLowerCase, NFC, the bidi rule, and IdentifierClass membership.
/// Pure-ASCII input takes a path that makes no ICU call, unless force_icu
/// (a test hook: the fuzzer checks that both paths agree).
precis_status username_case_mapped(std::string_view in, std::string& out, bool force_icu = false);

/// Enforces the OpaqueString profile (RFC 8265 4.2.2): non-ASCII spaces to
/// U+0020, NFC, and FreeformClass membership.  Pure ASCII makes no ICU call
/// unless force_icu.
precis_status opaque_string(std::string_view in, std::string& out, bool force_icu = false);

/// Converts a domain name to its Unicode form with UTS #46 (nontransitional,
/// STD3 rules, bidi and context checks), then checks each non-ASCII label
/// against IDNA2008 (RFC 5891 4.2, RFC 5892 derived properties and contextual
/// rules) and its A-label length (<= 63 octets).  ASCII labels of the result
/// are left for the caller to check (LDH rules).  Always calls ICU.
precis_status idna_to_unicode(std::string_view in, std::string& out);

/// Converts a domain name (as idna_to_unicode() gives it) to its ASCII
/// form: each non-ASCII label as its A-label (RFC 5890 2.3.2.1, UTS #46
/// nontransitional ToASCII), with DNS length limits enforced (labels of at
/// most 63 octets, at most 253 in all).  Pure ASCII is copied without an ICU
/// call (its length is not checked: XMPP allows longer names, DNS will
/// refuse them).
precis_status idna_to_ascii(std::string_view in, std::string& out);

/// How many times ICU-backed code ran on this thread (a test hook: it proves
/// that the ASCII fast paths stay away from ICU).
std::uint64_t precis_icu_calls() noexcept;

} // namespace xmpp::detail
