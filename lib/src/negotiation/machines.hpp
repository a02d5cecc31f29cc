// Sans-io protocol steps of the client-side stream features (Boost.MySQL
// style): each machine takes the peer's elements and says what to send and
// what comes next. No I/O, no Asio: the awaitable features in negotiator.cpp
// drive them, and test/lib/negotiation/machines_test.cpp scripts them.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/error_code.hpp>

#include <xmpp/jid.hpp>
#include <xmpp/sasl.hpp>
#include <xmpp/stream_feature.hpp>
#include <xmpp/xml/element.hpp>
#include <xmpp/xml/stream_header.hpp>

namespace xmpp::detail {

inline constexpr std::string_view tls_ns = "urn:ietf:params:xml:ns:xmpp-tls";
inline constexpr std::string_view sasl_ns = "urn:ietf:params:xml:ns:xmpp-sasl";
inline constexpr std::string_view bind_ns = "urn:ietf:params:xml:ns:xmpp-bind";
/// XEP-0440: SASL Channel-Binding Type Capability.
inline constexpr std::string_view cb_ns = "urn:xmpp:sasl-cb:0";

/// What a machine wants next.
struct step {
    enum class next_t : std::uint8_t {
        receive,     ///< send `out` (if any), then feed the next element to on_element()
        upgrade_tls, ///< take the transport and run the TLS handshake, then call done()
        done,        ///< send `out` (if any); the feature is negotiated
        fail,        ///< send `out` (if any); the stream must end with `ec`
    };
    next_t next = next_t::receive;
    std::string out;
    boost::system::error_code ec;
    std::string text;

    static step receive(std::string out) { return {next_t::receive, std::move(out), {}, {}}; }
    static step failure(boost::system::error_code ec, std::string text, std::string out = {}) {
        return {next_t::fail, std::move(out), ec, std::move(text)};
    }
    static step finished() { return {next_t::done, {}, {}, {}}; }
};

/// What a finished STARTTLS gives either side: the secure transport, and a
/// stream restart over it (RFC 6120 5.4.3.3).
inline negotiate_result secured(std::unique_ptr<transport> t) {
    negotiate_result r;
    r.gained = session_state::secure;
    r.new_transport = std::move(t);
    r.restart = true;
    return r;
}

/// STARTTLS, RFC 6120 5.4.2.
class starttls_machine {
public:
    step start();
    step on_element(xml::node e);
};

/// SASL, RFC 6120 6.4, over any sasl::mechanism.
class sasl_machine {
public:
    explicit sasl_machine(std::unique_ptr<sasl::mechanism> m) : mech_(std::move(m)) {}
    step start();
    step on_element(xml::node e);
    const sasl::mechanism& mechanism() const noexcept { return *mech_; }

private:
    std::unique_ptr<sasl::mechanism> mech_;
    bool done_ = false;
};

/// Resource binding, RFC 6120 7.
class bind_machine {
public:
    /// `resource` empty = let the server choose (7.6.1).
    explicit bind_machine(std::string resource, std::string id) : resource_(std::move(resource)), id_(std::move(id)) {}
    step start();
    step on_element(xml::node e);
    /// The full JID the server bound, after done.
    const jid& bound() const noexcept { return bound_; }

private:
    std::string resource_;
    std::string id_;
    jid bound_;
};

/// The mechanisms of a <mechanisms/> advertisement (RFC 6120 6.4.1), and the
/// XEP-0440 channel-binding types when the server lists them.
struct sasl_offer {
    std::vector<std::string> mechanisms;
    std::vector<std::string> binding_types;
};
sasl_offer parse_sasl_offer(xml::node mechanisms, xml::node features);

/// Checks the peer's stream header on the initiating side (RFC 6120 4.7):
/// version 1.0 or later, a stream id, the expected content namespace.
/// Returns the error (stream_errc / errc) and sets `text`.
boost::system::error_code check_stream_header(const xml::stream_header& h, std::string_view content_ns,
                                              std::string& text);

/// One advertised feature matched against the features we know.
struct offered_feature {
    const stream_feature* feature = nullptr;
    xml::node advertisement;
};

/// The children of <stream:features/> we know, in the order of `ours` (the
/// negotiator's feature list), not the document's; each feature once.
std::vector<offered_feature> match_features(xml::node features,
                                            const std::vector<std::shared_ptr<const stream_feature>>& ours);

/// Picks the next feature to negotiate (RFC 6120 4.3.2): the first of
/// `offered` (in our order, see match_features()) whose state bits fit.
/// Whether the server marked a feature required does not reorder them: every
/// feature that fits is negotiated in turn anyway, and a client that let the
/// server's markup rank SASL before an optional STARTTLS would skip TLS.
/// nullptr when none fits.
const offered_feature* choose_feature(const std::vector<offered_feature>& offered, session_state state);

} // namespace xmpp::detail
