// XMPP addresses (RFC 7622).  PRECIS and IDNA live in detail/precis.cpp;
// this file splits the address, applies the XMPP-specific rules (forbidden
// localpart characters, part lengths, IP literals, LDH domain labels) and
// keeps the ASCII domain path free of ICU.
#include <xmpp/jid.hpp>

#include <arpa/inet.h>

#include <array>
#include <cstring>
#include <string>

#include <boost/system/system_error.hpp>

#include "detail/precis.hpp"

namespace xmpp {
namespace {

// RFC 7622 3.2.1, 3.3.1, 3.4.1: each part is 1..1023 octets once prepared.
constexpr std::size_t max_part_bytes = 1023;

class jid_category_impl final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "xmpp.jid"; }

    std::string message(int ev) const override {
        switch (static_cast<jid_errc>(ev)) {
        case jid_errc::empty: return "JID is empty";
        case jid_errc::empty_localpart: return "JID localpart is empty (nothing before '@')";
        case jid_errc::empty_domainpart: return "JID domainpart is empty";
        case jid_errc::empty_resourcepart: return "JID resourcepart is empty (nothing after '/')";
        case jid_errc::localpart_too_long: return "JID localpart is longer than 1023 bytes";
        case jid_errc::domainpart_too_long: return "JID domainpart is longer than 1023 bytes";
        case jid_errc::resourcepart_too_long: return "JID resourcepart is longer than 1023 bytes";
        case jid_errc::localpart_forbidden_char:
            return "JID localpart contains one of the forbidden characters \" & ' / : < > @";
        case jid_errc::localpart_disallowed:
            return "JID localpart is not allowed by the PRECIS UsernameCaseMapped profile";
        case jid_errc::resourcepart_disallowed:
            return "JID resourcepart is not allowed by the PRECIS OpaqueString profile";
        case jid_errc::domainpart_invalid: return "JID domainpart is not a valid domain name";
        case jid_errc::invalid_ip_literal: return "JID domainpart is not a valid IP address";
        case jid_errc::invalid_utf8: return "JID is not valid UTF-8";
        }
        return "unknown JID error";
    }
};

// jid_errc{} (0) means success throughout this file.
constexpr jid_errc ok{};

char to_lower_ascii(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// --- localpart and resourcepart ---------------------------------------------

jid_errc prepare_localpart(std::string_view in, std::string& out) {
    if (in.empty()) return jid_errc::empty_localpart;
    switch (detail::username_case_mapped(in, out)) {
    case detail::precis_status::ok: break;
    case detail::precis_status::invalid_utf8: return jid_errc::invalid_utf8;
    case detail::precis_status::empty: return jid_errc::empty_localpart;
    case detail::precis_status::disallowed: return jid_errc::localpart_disallowed;
    }
    // RFC 7622 3.3.1, checked after preparation: width mapping turns e.g.
    // U+FF20 FULLWIDTH COMMERCIAL AT into '@'.
    if (out.find_first_of("\"&'/:<>@") != std::string::npos)
        return jid_errc::localpart_forbidden_char;
    if (out.size() > max_part_bytes) return jid_errc::localpart_too_long;
    return ok;
}

jid_errc prepare_resourcepart(std::string_view in, std::string& out) {
    if (in.empty()) return jid_errc::empty_resourcepart;
    switch (detail::opaque_string(in, out)) {
    case detail::precis_status::ok: break;
    case detail::precis_status::invalid_utf8: return jid_errc::invalid_utf8;
    case detail::precis_status::empty: return jid_errc::empty_resourcepart;
    case detail::precis_status::disallowed: return jid_errc::resourcepart_disallowed;
    }
    if (out.size() > max_part_bytes) return jid_errc::resourcepart_too_long;
    return ok;
}

// --- domainpart ---------------------------------------------------------------

// RFC 7622 3.2.1 / RFC 3986 3.2.2 IP-literal: "[" IPv6address "]", kept in
// the canonical text form of RFC 5952 (as inet_ntop writes it).  IPvFuture
// and zone identifiers are not accepted.
jid_errc prepare_ip_literal(std::string_view in, std::string& out) {
    if (in.size() < 3 || in.front() != '[' || in.back() != ']' || in.size() > 64)
        return jid_errc::invalid_ip_literal;
    const std::string_view inner = in.substr(1, in.size() - 2);
    // Only hex digits, ':' and '.': also keeps NUL away from inet_pton.
    for (char c : inner) {
        const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!hex && c != ':' && c != '.') return jid_errc::invalid_ip_literal;
    }
    const std::string text(inner);
    unsigned char addr[16];
    if (inet_pton(AF_INET6, text.c_str(), addr) != 1) return jid_errc::invalid_ip_literal;
    char buf[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, addr, buf, sizeof buf) == nullptr) return jid_errc::invalid_ip_literal;
    out.clear();
    out.push_back('[');
    out.append(buf, std::strlen(buf));
    out.push_back(']');
    return ok;
}

// RFC 3986 IPv4address (dotted quad of dec-octets without leading zeros).
jid_errc prepare_ipv4(std::string_view in, std::string& out) {
    if (in.size() > 15) return jid_errc::invalid_ip_literal;
    const std::string text(in);
    unsigned char addr[4];
    if (inet_pton(AF_INET, text.c_str(), addr) != 1) return jid_errc::invalid_ip_literal;
    char buf[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, addr, buf, sizeof buf) == nullptr) return jid_errc::invalid_ip_literal;
    out.assign(buf);
    return ok;
}

enum class label_check { valid, invalid, needs_idna };

// One lower-cased ASCII label: an NR-LDH label (RFC 5890 2.3.1) of 1..63
// octets, or an "xn--" label that IDNA must validate and convert.  Other
// R-LDH labels ("ab--c") are reserved and rejected, as UTS #46 does.
label_check check_ldh_label(std::string_view label) noexcept {
    if (label.empty() || label.size() > 63) return label_check::invalid;
    for (char c : label) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return label_check::invalid;
    }
    if (label.front() == '-' || label.back() == '-') return label_check::invalid;
    if (label.size() >= 4 && label[2] == '-' && label[3] == '-')
        return label.substr(0, 2) == "xn" ? label_check::needs_idna : label_check::invalid;
    return label_check::valid;
}

enum class ascii_domain_result { done, needs_idna };

// The ASCII domain path (no ICU): IPv4 address or LDH labels, lower-cased.
// strip_dot: remove one trailing dot first (RFC 7622 3.2.1), which the ICU
// path has already done on its input.
ascii_domain_result prepare_ascii_domain(std::string_view in, bool strip_dot, std::string& out,
                                         jid_errc& err) {
    err = ok;
    if (strip_dot && !in.empty() && in.back() == '.') in.remove_suffix(1);
    if (in.empty()) {
        err = jid_errc::empty_domainpart;
        return ascii_domain_result::done;
    }
    if (in.size() > max_part_bytes) {
        err = jid_errc::domainpart_too_long;
        return ascii_domain_result::done;
    }
    // Only digits and dots: meant as an IPv4 address (a numeric top-level
    // label is not a host name, RFC 3696 2), so it must be a valid one.
    if (in.find_first_not_of("0123456789.") == std::string_view::npos) {
        err = prepare_ipv4(in, out);
        return ascii_domain_result::done;
    }
    out.resize(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) out[i] = to_lower_ascii(in[i]);
    bool needs_idna = false;
    std::size_t start = 0;
    while (true) {
        std::size_t dot = out.find('.', start);
        const bool last = dot == std::string::npos;
        if (last) dot = out.size();
        switch (check_ldh_label(std::string_view(out).substr(start, dot - start))) {
        case label_check::valid: break;
        case label_check::needs_idna: needs_idna = true; break;
        case label_check::invalid:
            err = jid_errc::domainpart_invalid;
            out.clear();
            return ascii_domain_result::done;
        }
        if (last) break;
        start = dot + 1;
    }
    if (needs_idna) {
        out.clear();
        return ascii_domain_result::needs_idna;
    }
    return ascii_domain_result::done;
}

// Removes one trailing label separator: '.', or one that UTS #46 maps to it
// (U+3002 IDEOGRAPHIC FULL STOP, U+FF0E FULLWIDTH FULL STOP, U+FF61
// HALFWIDTH IDEOGRAPHIC FULL STOP).
std::string_view strip_trailing_separator(std::string_view d) noexcept {
    if (!d.empty() && d.back() == '.') return d.substr(0, d.size() - 1);
    for (std::string_view sep : {"\xE3\x80\x82", "\xEF\xBC\x8E", "\xEF\xBD\xA1"}) {
        if (d.size() >= sep.size() && d.substr(d.size() - sep.size()) == sep)
            return d.substr(0, d.size() - sep.size());
    }
    return d;
}

jid_errc prepare_domainpart(std::string_view in, std::string& out) {
    if (in.empty()) return jid_errc::empty_domainpart;
    if (in.front() == '[') return prepare_ip_literal(in, out);
    if (detail::is_ascii(in)) {
        jid_errc err = ok;
        if (prepare_ascii_domain(in, true, out, err) == ascii_domain_result::done) return err;
    }
    // Non-ASCII, or an "xn--" label: IDNA2008 via UTS #46 (RFC 7622 3.2.2,
    // 3.2.3), which also maps case, width and full stops.
    const std::string_view d = strip_trailing_separator(in);
    if (d.empty()) return jid_errc::empty_domainpart;
    std::string u;
    switch (detail::idna_to_unicode(d, u)) {
    case detail::precis_status::ok: break;
    case detail::precis_status::invalid_utf8: return jid_errc::invalid_utf8;
    case detail::precis_status::empty: return jid_errc::empty_domainpart;
    case detail::precis_status::disallowed: return jid_errc::domainpart_invalid;
    }
    if (detail::is_ascii(u)) {
        // e.g. fullwidth letters or digits: the result must pass the ASCII
        // rules, so that parsing the prepared form again gives the same.
        jid_errc err = ok;
        if (prepare_ascii_domain(u, false, out, err) == ascii_domain_result::needs_idna)
            return jid_errc::domainpart_invalid;
        return err;
    }
    if (u.size() > max_part_bytes) return jid_errc::domainpart_too_long;
    // The U-labels were checked by idna_to_unicode; ASCII labels must be LDH.
    std::size_t start = 0;
    while (true) {
        std::size_t dot = u.find('.', start);
        const bool last = dot == std::string::npos;
        if (last) dot = u.size();
        const std::string_view label = std::string_view(u).substr(start, dot - start);
        if (label.empty()) return jid_errc::domainpart_invalid;
        if (detail::is_ascii(label) && check_ldh_label(label) != label_check::valid)
            return jid_errc::domainpart_invalid;
        if (last) break;
        start = dot + 1;
    }
    out = std::move(u);
    return ok;
}

} // namespace

const boost::system::error_category& jid_category() noexcept {
    static const jid_category_impl category;
    return category;
}

jid jid::assemble(std::string_view local, std::string_view domain, std::string_view resource) {
    jid j;
    j.str_.reserve(local.size() + domain.size() + resource.size() + 2);
    if (!local.empty()) j.str_.append(local).push_back('@');
    j.str_.append(domain);
    if (!resource.empty()) j.str_.append(1, '/').append(resource);
    j.local_len_ = static_cast<std::uint16_t>(local.size());
    j.domain_len_ = static_cast<std::uint16_t>(domain.size());
    return j;
}

jid jid::parse(std::string_view s, boost::system::error_code& ec) {
    ec.clear();
    if (s.empty()) {
        ec = jid_errc::empty;
        return {};
    }
    if (!detail::is_valid_utf8(s)) {
        ec = jid_errc::invalid_utf8;
        return {};
    }
    // RFC 7622 3.1: the first '/' starts the resourcepart; the first '@'
    // before it ends the localpart; the rest is the domainpart.
    std::string_view head = s;
    std::string_view resource;
    bool has_resource = false;
    if (const auto slash = s.find('/'); slash != std::string_view::npos) {
        head = s.substr(0, slash);
        resource = s.substr(slash + 1);
        has_resource = true;
    }
    std::string_view local;
    std::string_view domain = head;
    bool has_local = false;
    if (const auto at = head.find('@'); at != std::string_view::npos) {
        local = head.substr(0, at);
        domain = head.substr(at + 1);
        has_local = true;
    }
    std::string l, d, r;
    jid_errc err = ok;
    if (has_local) err = prepare_localpart(local, l);
    if (err == ok) err = prepare_domainpart(domain, d);
    if (err == ok && has_resource) err = prepare_resourcepart(resource, r);
    if (err != ok) {
        ec = err;
        return {};
    }
    return assemble(l, d, r);
}

jid jid::parse(std::string_view s) {
    boost::system::error_code ec;
    jid j = parse(s, ec);
    if (ec) throw boost::system::system_error(ec, "xmpp::jid::parse");
    return j;
}

jid jid::from_parts(std::string_view local, std::string_view domain, std::string_view resource,
                    boost::system::error_code& ec) {
    ec.clear();
    std::string l, d, r;
    jid_errc err = ok;
    if (!local.empty()) err = prepare_localpart(local, l);
    if (err == ok) err = prepare_domainpart(domain, d);
    if (err == ok && !resource.empty()) err = prepare_resourcepart(resource, r);
    if (err != ok) {
        ec = err;
        return {};
    }
    return assemble(l, d, r);
}

jid jid::bare() const {
    jid j;
    j.str_.assign(str_, 0, domain_end());
    j.local_len_ = local_len_;
    j.domain_len_ = domain_len_;
    return j;
}

jid jid::domain() const {
    jid j;
    j.str_.assign(domainpart());
    j.domain_len_ = domain_len_;
    return j;
}

jid jid::with_resource(std::string_view r, boost::system::error_code& ec) const {
    ec.clear();
    if (empty()) {
        ec = jid_errc::empty_domainpart;
        return {};
    }
    std::string prepared;
    if (const jid_errc err = prepare_resourcepart(r, prepared); err != ok) {
        ec = err;
        return {};
    }
    return assemble(localpart(), domainpart(), prepared);
}

std::string domain_to_ascii(const jid& j, boost::system::error_code& ec) {
    ec = {};
    std::string out;
    if (j.empty() || detail::idna_to_ascii(j.domainpart(), out) != detail::precis_status::ok) {
        ec = jid_errc::domainpart_invalid;
        out.clear();
    }
    return out;
}

} // namespace xmpp
