// Implements XMPP addresses (JIDs) as specified by RFC 7622: parsing,
// validation, and preparation with PRECIS (RFC 8264, RFC 8265) and IDNA2008.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <boost/system/error_code.hpp>

namespace xmpp {

/// Why a string is not a valid JID.  Value 0 is reserved for "no error".
enum class jid_errc {
    empty = 1,                ///< the whole input is empty
    empty_localpart,          ///< "@" with nothing before it (RFC 7622 3.3.1)
    empty_domainpart,         ///< no domainpart, or only a trailing dot (RFC 7622 3.2.1)
    empty_resourcepart,       ///< "/" with nothing after it (RFC 7622 3.4.1)
    localpart_too_long,       ///< more than 1023 bytes after preparation (RFC 7622 3.3.1)
    domainpart_too_long,      ///< more than 1023 bytes after preparation (RFC 7622 3.2.1)
    resourcepart_too_long,    ///< more than 1023 bytes after preparation (RFC 7622 3.4.1)
    localpart_forbidden_char, ///< one of " & ' / : < > @ (RFC 7622 3.3.1)
    localpart_disallowed,     ///< rejected by UsernameCaseMapped (RFC 8265 3.3)
    resourcepart_disallowed,  ///< rejected by OpaqueString (RFC 8265 4.2)
    domainpart_invalid,       ///< not a valid IDNA2008 / LDH domain name (RFC 7622 3.2)
    invalid_ip_literal,       ///< "[...]" that is not an IPv6 address, or a bad IPv4 address
    invalid_utf8,             ///< the input is not well-formed UTF-8
};

/// The category of jid_errc; name() is "xmpp.jid".
const boost::system::error_category& jid_category() noexcept;

/// Makes an error_code of jid_category().
inline boost::system::error_code make_error_code(jid_errc e) noexcept {
    return {static_cast<int>(e), jid_category()};
}

/// An XMPP address, `[localpart@]domainpart[/resourcepart]`, always held in
/// its prepared (enforced) form: localpart by PRECIS UsernameCaseMapped,
/// resourcepart by PRECIS OpaqueString, domainpart as IDNA2008 U-labels in
/// lower case without a trailing dot, or an IP address in canonical text
/// form.  Equality, ordering and hashing work on that form, so two JIDs that
/// differ only in the case of their localpart or domainpart are equal.
///
/// The prepared string is stored once; the parts are views into it.
/// Pure-ASCII input is prepared without calling ICU.
class jid {
public:
    /// The empty JID (no domainpart): what parse() returns on error.
    jid() = default;

    /// Parses and prepares s (RFC 7622 3.1: the first '/' starts the
    /// resourcepart, then the first '@' before it ends the localpart).
    /// On error sets ec and returns the empty JID.
    static jid parse(std::string_view s, boost::system::error_code& ec);

    /// As above; throws boost::system::system_error on error.
    static jid parse(std::string_view s);

    /// Builds a JID from separate parts, each prepared as by parse().  An
    /// empty local or resource means "absent"; the domain must not be empty.
    /// The parts are not split further: a '/' in the resource is kept, an
    /// '@' or '/' in the local is localpart_forbidden_char.
    static jid from_parts(std::string_view local, std::string_view domain,
                          std::string_view resource, boost::system::error_code& ec);

    /// The prepared localpart, empty when there is none.
    std::string_view localpart() const noexcept { return view().substr(0, local_len_); }

    /// The prepared domainpart, empty only for the empty JID.
    std::string_view domainpart() const noexcept {
        return view().substr(domain_begin(), domain_len_);
    }

    /// The prepared resourcepart, empty when there is none.
    std::string_view resourcepart() const noexcept {
        const std::size_t end = domain_end();
        return end < str_.size() ? view().substr(end + 1) : std::string_view{};
    }

    /// The prepared form "localpart@domainpart/resourcepart".
    std::string_view str() const noexcept { return str_; }

    /// True for the default-constructed (or failed-to-parse) JID.
    bool empty() const noexcept { return str_.empty(); }

    /// True when there is a domainpart and no resourcepart.
    bool is_bare() const noexcept { return !empty() && domain_end() == str_.size(); }

    /// True when there is a resourcepart.
    bool is_full() const noexcept { return domain_end() < str_.size(); }

    /// The JID without its resourcepart ("l@d" or "d"); no re-preparation.
    jid bare() const;

    /// The JID of the domainpart alone; no re-preparation.
    jid domain() const;

    /// A copy with the resourcepart replaced by r (prepared with OpaqueString).
    /// On error (including an empty r, or *this being empty) sets ec and
    /// returns the empty JID.
    jid with_resource(std::string_view r, boost::system::error_code& ec) const;

    /// Equality of the prepared forms.
    friend bool operator==(const jid& a, const jid& b) noexcept { return a.str_ == b.str_; }

    /// Orders by domainpart, then localpart, then resourcepart, so that the
    /// JIDs of one domain and of one bare JID sort together.
    friend std::strong_ordering operator<=>(const jid& a, const jid& b) noexcept {
        if (auto c = a.domainpart() <=> b.domainpart(); c != 0) return c;
        if (auto c = a.localpart() <=> b.localpart(); c != 0) return c;
        return a.resourcepart() <=> b.resourcepart();
    }

private:
    // Assembles already prepared parts (local and resource may be empty).
    static jid assemble(std::string_view local, std::string_view domain, std::string_view resource);

    std::string_view view() const noexcept { return str_; }
    std::size_t domain_begin() const noexcept { return local_len_ == 0 ? 0 : local_len_ + 1u; }
    std::size_t domain_end() const noexcept { return domain_begin() + domain_len_; }

    std::string str_;             // prepared "l@d/r"
    std::uint16_t local_len_ = 0; // bytes; 0 when there is no localpart
    std::uint16_t domain_len_ = 0;
};

/// The domainpart of `j` in the form DNS, SNI (RFC 6066 3) and certificate
/// name checks (RFC 6125 6.4.2) need: IDNA2008 U-labels become A-labels
/// ("münchen.example" -> "xn--mnchen-3ya.example", RFC 5890 2.3.2.1); ASCII
/// names and IP addresses are returned as they are, without an ICU call.
/// Sets ec to jid_errc::domainpart_invalid (and returns "") when the
/// A-label form breaks DNS limits (a label over 63 octets, a name over 253)
/// or `j` is empty.
std::string domain_to_ascii(const jid& j, boost::system::error_code& ec);

} // namespace xmpp

template <>
struct boost::system::is_error_code_enum<xmpp::jid_errc> : std::true_type {};

/// Hashes the prepared form, consistent with operator==.
template <>
struct std::hash<xmpp::jid> {
    std::size_t operator()(const xmpp::jid& j) const noexcept {
        return std::hash<std::string_view>{}(j.str());
    }
};
