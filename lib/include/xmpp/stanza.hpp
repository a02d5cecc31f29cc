// Stanzas (RFC 6120 section 8): classification, typed read-only views over an
// xml::node, builders returning an owning xml::element, and stanza ids.
//
// Views are cheap handles (one xml::node): they allocate nothing and are only
// as long-lived as the node they wrap. Addresses are returned as raw
// attribute text; parsing them into JIDs is the caller's business.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <xmpp/xml/element.hpp>

namespace xmpp {

/// The three stanza kinds of RFC 6120 8, or `other` for anything else
/// (stream features, SASL, stream management, stanzas in a wrong namespace).
enum class stanza_kind { message, presence, iq, other };

/// True for the namespaces stanzas are defined in: jabber:client,
/// jabber:server (RFC 6120 4.8.3) and jabber:component:accept (XEP-0114).
bool is_content_ns(std::string_view ns_name) noexcept;

/// Classify a received element by local name and resolved namespace.
///
/// A `<message/>` whose namespace is not a content namespace is `other`: a
/// prefix or default namespace can rebind it to something else entirely.
/// Allocates nothing; meant for the hot path of every received element.
stanza_kind classify(xml::node n) noexcept;

/// Message types (RFC 6121 5.2.2). Absent or unknown means normal.
enum class message_type { normal, chat, groupchat, headline, error };
/// Presence types (RFC 6121 4.7.1); `available` is the absence of 'type'.
enum class presence_type {
    available, unavailable, subscribe, subscribed, unsubscribe, unsubscribed, probe, error
};
/// IQ types (RFC 6120 8.2.3).
enum class iq_type { get, set, result, error };

/// The 'type' attribute value of a message type, e.g. "chat".
std::string_view to_string(message_type t) noexcept;
/// The 'type' attribute value of a presence type; "" for available, which
/// is written as no 'type' at all.
std::string_view to_string(presence_type t) noexcept;
/// The 'type' attribute value of an IQ type, e.g. "get".
std::string_view to_string(iq_type t) noexcept;

/// Message type for an attribute value; nullopt when not a defined value.
std::optional<message_type> message_type_from_string(std::string_view s) noexcept;
/// Presence type for an attribute value ("" gives available); nullopt when
/// not a defined value.
std::optional<presence_type> presence_type_from_string(std::string_view s) noexcept;
/// IQ type for an attribute value; nullopt when not a defined value.
std::optional<iq_type> iq_type_from_string(std::string_view s) noexcept;

/// Read access to the attributes common to all stanzas (RFC 6120 8.1).
class stanza_view {
public:
    stanza_view() = default;
    /// Wrap `n`; no check is made that it is a stanza (see classify()).
    explicit stanza_view(xml::node n) noexcept : node_(n) {}

    /// The wrapped element.
    xml::node node() const noexcept { return node_; }
    /// True when a node is wrapped.
    explicit operator bool() const noexcept { return static_cast<bool>(node_); }
    /// classify(node()).
    stanza_kind kind() const noexcept { return classify(node_); }

    /// The 'id' attribute (8.1.3), "" when absent.
    std::string_view id() const noexcept { return node_.attr("id"); }
    /// The 'to' attribute (8.1.1), raw, "" when absent.
    std::string_view to() const noexcept { return node_.attr("to"); }
    /// The 'from' attribute (8.1.2), raw, "" when absent.
    std::string_view from() const noexcept { return node_.attr("from"); }
    /// The 'xml:lang' attribute (8.1.5) of the stanza itself, "" when absent
    /// (the stream's default language then applies).
    std::string_view lang() const noexcept { return node_.attr("xml:lang"); }
    /// The raw 'type' attribute (8.1.4), "" when absent.
    std::string_view type_attr() const noexcept { return node_.attr("type"); }
    /// True for type='error': such a stanza carries an <error/> child and must
    /// not be answered with another error (8.3.1).
    bool is_error() const noexcept { return type_attr() == "error"; }

protected:
    xml::node node_;
};

/// A `<message/>` stanza.
class message_view : public stanza_view {
public:
    using stanza_view::stanza_view;

    /// The message type; absent or unknown values give normal (RFC 6121 5.2.2).
    message_type type() const noexcept;
    /// Text of the first `<body/>` child; nullopt when there is none.
    std::optional<std::string> body() const;
};

/// A `<presence/>` stanza.
class presence_view : public stanza_view {
public:
    using stanza_view::stanza_view;

    /// The presence type: available when 'type' is absent, nullopt when it is
    /// not a defined value (RFC 6121 4.7.1).
    std::optional<presence_type> type() const noexcept;
};

/// An `<iq/>` stanza.
class iq_view : public stanza_view {
public:
    using stanza_view::stanza_view;

    /// The IQ type; nullopt when 'type' is absent or not a defined value
    /// (required by 8.2.3; such an IQ deserves a bad-request error).
    std::optional<iq_type> type() const noexcept;
    /// True for get and set: the IQs that must be answered (8.2.3).
    bool is_request() const noexcept;
    /// The first child element that is not the stanza's `<error/>`, or an
    /// empty node (an empty result has no payload).
    xml::node payload() const noexcept;
};

/// Build `<message/>` with a fresh id and, unless empty, 'to' and a `<body/>`.
/// The type attribute is omitted for normal (its default).
xml::element make_message(std::string_view to, std::string_view body,
                          message_type type = message_type::chat,
                          std::string_view content_ns = xml::ns::client);

/// Build `<presence/>` with a fresh id and, unless empty, 'to'. available is
/// written as no 'type' attribute.
xml::element make_presence(presence_type type = presence_type::available,
                           std::string_view to = {},
                           std::string_view content_ns = xml::ns::client);

/// Build `<iq/>` with a fresh id, the given type, 'to' unless empty, and,
/// when `payload_qname` is not empty, an empty payload child element in
/// `payload_ns` (fill it through iq_view(e.root()).payload()).
xml::element make_iq(iq_type type, std::string_view to,
                     std::string_view payload_qname = {}, std::string_view payload_ns = {},
                     std::string_view content_ns = xml::ns::client);

/// Build the empty result for an IQ request (8.2.3): same id and namespace,
/// 'to' and 'from' swapped (each only when present in the request), and
/// type='result'. Returns an empty element when `request` is not an IQ of
/// type get or set: results and errors must not be answered.
xml::element make_iq_result(const iq_view& request);

/// Length in characters of the ids new_id() returns: 15, so that an id
/// fits in std::string's inline buffer (no allocation for each copy of it).
inline constexpr std::size_t id_length = 15;

/// A fresh stanza id (8.1.3): 15 characters of [A-Za-z0-9_-] carrying 90
/// random bits from getrandom(2), so ids are unique and unpredictable.
///
/// Random bytes are fetched in blocks into a per-thread buffer (discarded in
/// a forked child), so most calls make no system call. Thread safe. Throws
/// std::system_error only when the kernel cannot supply random bytes at all.
std::string new_id();

} // namespace xmpp
