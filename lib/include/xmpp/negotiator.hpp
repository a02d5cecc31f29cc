// The Negotiator concept (RFC 6120 4.3) and the default client negotiator.
//
// A negotiator runs a stream from its opening to the ready state: it opens
// the stream, reads the peer's header and <stream:features/>, picks the next
// stream_feature and runs it, restarting the stream when a feature asks
// (STARTTLS, SASL). The session owns the I/O; the negotiator only sees a
// negotiation_stream, so it never knows which transport runs below.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include <xmpp/sasl.hpp>
#include <xmpp/stream_feature.hpp>
#include <xmpp/tls.hpp>
#include <xmpp/xml/stream_header.hpp>

namespace xmpp {

/// Stream-level operations a negotiator needs beyond what features use.
class negotiation_io : public negotiation_stream {
public:
    /// Send our stream header (RFC 6120 4.7), after resetting the reader for
    /// a new stream (a restart keeps input already received: 4.3.3).
    virtual asio::awaitable<void> open_stream() = 0;
    /// The peer's stream header (step deadline applies; throws as receive()).
    virtual asio::awaitable<xml::stream_header> receive_header() = 0;
    /// Install a new transport (after STARTTLS) and mark the stream secure.
    virtual void replace_transport(std::unique_ptr<transport> t) = 0;
    /// Add state bits.
    virtual void add_state(session_state bits) = 0;
};

/// Runs the negotiation of one stream.
class negotiator {
public:
    virtual ~negotiator() = default;
    /// Negotiate until the session is ready. Throws boost::system::system_error
    /// with the reason (the session then ends the stream).
    virtual asio::awaitable<void> run(negotiation_io& io) = 0;
};

/// Settings of the default client negotiator and its built-in features.
struct client_features_config {
    sasl::credentials credentials;
    sasl::options sasl;
    /// Accept a stream without TLS when the server offers no STARTTLS (an
    /// offered STARTTLS is always taken). PLAIN is never used on such a
    /// stream.
    bool allow_plaintext = false;
    /// TLS context for STARTTLS (verification name: the peer's domain).
    /// Without one, a STARTTLS offer cannot be taken up.
    std::optional<tls::context> tls;
    /// Requested resource; empty = server-assigned (RFC 6120 7.6).
    std::string resource;
};

/// STARTTLS (RFC 6120 5). Advertised <required/> or not, it is negotiated
/// whenever offered on a stream that is not secure yet, before any other
/// feature (the default negotiator ranks features in its own order, this
/// one first, not in the order of <stream:features/>).
std::shared_ptr<const stream_feature> starttls_feature(tls::context ctx);
/// SASL (RFC 6120 6) with the mechanism choice of sasl::select().
std::shared_ptr<const stream_feature> sasl_feature(sasl::credentials creds, sasl::options opts,
                                                   bool allow_plaintext);
/// Resource binding (RFC 6120 7); `resource` empty = server-assigned.
std::shared_ptr<const stream_feature> bind_feature(std::string resource);

/// The default client negotiator: STARTTLS, SASL and bind, then `extra`
/// features in order (e.g. XEP-0198 later). Refuses to go on without TLS
/// (errc::tls_required) unless `cfg.allow_plaintext`.
std::shared_ptr<negotiator> make_client_negotiator(const client_features_config& cfg,
                                                   std::vector<std::shared_ptr<const stream_feature>> extra = {});

// --- Receiving (server) side ----------------------------------------------------

/// STARTTLS, receiving side (RFC 6120 5.4): offered on a stream that is not
/// secure yet (never on a WebSocket: the session drops it there, RFC 7395
/// 3.? / 4); <required/> with `required`. Answers <starttls/> with
/// <proceed/> and runs tls::accept() with `server_ctx`.
std::shared_ptr<const stream_feature> starttls_server_feature(tls::context server_ctx, bool required);

/// SASL, receiving side (RFC 6120 6.4).
///
/// list() appends <mechanisms/> with what `opts` can serve on the stream's
/// state: SCRAM with opts.scram_lookup (all -PLUS first, then plain, each in
/// opts.scram_hashes order), -PLUS only when the transport gives binding
/// data (tls-exporter, tls-server-end-point, tls-unique under TLS <= 1.2),
/// PLAIN only on a secure stream with opts.plain_check or opts.sasldb_path,
/// ANONYMOUS with opts.allow_anonymous; beside it in the features element,
/// when -PLUS is offered, the XEP-0440 <sasl-channel-binding/> with the
/// usable types. It returns true (mandatory, 6.4.1), or false having
/// appended nothing when nothing can be offered. With `require_tls`,
/// necessary() is session_state::secure and nothing is offered before TLS.
///
/// negotiate() takes the <auth/> the client started with from `data` (an
/// xml::element) and runs the exchange: <challenge/>/<response/> in base64
/// ("=" for zero-length data), the awaited lookups, the client's <abort/>
/// (6.4.4: <aborted/>). Failures are answered with <failure/> (6.5: the
/// condition, sometimes a short <text/>) and the client may send a new
/// <auth/>, until opts.max_attempts attempts failed: then it throws
/// boost::system::system_error with the last sasl::errc condition. An
/// element other than <response/>/<abort/> during an exchange, or other
/// than <auth/> after a failure, throws errc::unexpected_element; errors of
/// the stream's receive() and send_raw() propagate. On success it sends
/// <success/> (SCRAM's v= as additional data, 6.4.6), calls
/// set_peer_address() with user@domain (the authzid's bare JID when one was
/// allowed; anon-<random>@domain for ANONYMOUS; domain = local_address()'s
/// domainpart) and set_auth_mechanism(), and returns {authenticated,
/// restart}. The feature keeps no per-stream state: one instance serves
/// every session.
std::shared_ptr<const stream_feature> sasl_server_feature(sasl::server_options opts, bool require_tls);

/// Decides the resource of a bind request (RFC 6120 7.6-7.7) for the
/// account `bare` asking for `requested` ("" = server-generated): returns
/// the resource to bind, or throws system_error with stanza_errc::conflict
/// (or another stanza error) to refuse. Called on the session's strand.
using resource_claim = std::function<asio::awaitable<std::string>(negotiation_stream& s, jid bare, std::string requested)>;

/// Resource binding, receiving side (RFC 6120 7): answers the bind IQ with
/// the full JID `claim` chose, or with its error (bad-request for a
/// resource that is not valid, RFC 6120 7.7.2.1).
std::shared_ptr<const stream_feature> bind_server_feature(resource_claim claim);

/// The receiving negotiator for `domain`: answers the peer's stream header
/// (host-unknown for another 'to', RFC 6120 4.9.3.6), lists the features
/// the state allows after each (re)start, and negotiates the one the peer
/// picks, until the stream is ready. A stanza before authentication is a
/// not-authorized stream error (RFC 6120 6.4.?), another unknown element
/// unsupported-stanza-type.
std::shared_ptr<negotiator> make_server_negotiator(std::string domain,
                                                   std::vector<std::shared_ptr<const stream_feature>> features);

} // namespace xmpp
