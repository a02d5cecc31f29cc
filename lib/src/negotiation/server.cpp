// The receiving negotiator (RFC 6120 4.3) and the receiving side of STARTTLS
// and resource binding. SASL's receiving side is in server_sasl.cpp.
#include <xmpp/negotiator.hpp>

#include "negotiation/machines.hpp"

#include <xmpp/error.hpp>
#include <xmpp/stanza.hpp>
#include <xmpp/stanza_error.hpp>
#include <xmpp/stream_error.hpp>

#include <boost/system/system_error.hpp>

#include <algorithm>

namespace xmpp {

namespace {

[[noreturn]] void fail(boost::system::error_code ec, const std::string& text) {
    throw boost::system::system_error(ec, text);
}

const xml::element* first_element(const std::any& data) { return std::any_cast<xml::element>(&data); }

// --- STARTTLS (RFC 6120 5.4.2) ---------------------------------------------------

class starttls_server final : public stream_feature {
public:
    starttls_server(tls::context ctx, bool required) : ctx_(std::move(ctx)), required_(required) {}
    std::string_view name() const noexcept override { return "starttls"; }
    std::string_view ns() const noexcept override { return detail::tls_ns; }
    session_state prohibited() const noexcept override { return session_state::secure; }

    asio::awaitable<parse_result> parse(xml::node) const override { co_return parse_result{}; }

    asio::awaitable<bool> list(xml::node features, const negotiation_stream&) const override {
        auto st = features.append("starttls", detail::tls_ns);
        if (required_) st.append("required"); // 5.4.1
        co_return required_;
    }

    asio::awaitable<negotiate_result> negotiate(negotiation_stream& s, std::any&) const override {
        // 5.4.2.3: <proceed/>, then the handshake on the next byte; anything
        // the client sent after <starttls/> is refused by take_transport().
        co_await s.send_raw("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        auto plain = s.take_transport();
        co_return detail::secured(co_await tls::accept(std::move(plain), ctx_));
    }

private:
    tls::context ctx_;
    bool required_;
};

// --- Resource binding (RFC 6120 7) ------------------------------------------------

class bind_server final : public stream_feature {
public:
    explicit bind_server(resource_claim claim) : claim_(std::move(claim)) {}
    std::string_view name() const noexcept override { return "bind"; }
    std::string_view ns() const noexcept override { return detail::bind_ns; }
    session_state necessary() const noexcept override { return session_state::authenticated; }
    session_state prohibited() const noexcept override { return session_state::ready; }

    asio::awaitable<parse_result> parse(xml::node) const override { co_return parse_result{true, {}}; }

    asio::awaitable<bool> list(xml::node features, const negotiation_stream&) const override {
        features.append("bind", detail::bind_ns);
        co_return true; // 7.3.1: mandatory-to-negotiate
    }

    bool starts_with(xml::node e) const noexcept override { return is_bind_request(e); }

    asio::awaitable<negotiate_result> negotiate(negotiation_stream& s, std::any& data) const override {
        const auto* first = first_element(data);
        if (!first) fail(make_error_code(errc::invalid_argument), "bind: no request");
        xml::element request = xml::element::copy_of(first->root());
        const jid bare = s.peer_address().bare();
        if (bare.empty()) fail(make_error_code(errc::bind_failed), "bind before authentication");
        // 7.7: an error leaves the client free to try again; a few times.
        for (int attempt = 0;; ++attempt) {
            auto req = request.root();
            auto res = req.child("bind", detail::bind_ns).child("resource", detail::bind_ns);
            std::string requested = res ? res.text() : std::string{};
            std::optional<stanza_error> refusal;
            jid full;
            if (res && requested.empty()) {
                refusal = stanza_error(stanza_errc::bad_request, "empty resource");
            } else if (!requested.empty()) {
                boost::system::error_code ec;
                (void)bare.with_resource(requested, ec);
                // 7.7.2.1: a resource that fails preparation is bad-request.
                if (ec) refusal = stanza_error(stanza_errc::bad_request, "the resource is not valid: " + ec.message());
            }
            if (!refusal) {
                try {
                    std::string chosen = co_await claim_(s, bare, requested);
                    boost::system::error_code ec;
                    full = bare.with_resource(chosen, ec);
                    if (ec) refusal = stanza_error(stanza_errc::internal_server_error, "no resource could be bound");
                } catch (const boost::system::system_error& e) {
                    if (e.code().category() != stanza_category()) throw;
                    refusal = stanza_error(static_cast<stanza_errc>(e.code().value()));
                }
            }
            if (!refusal) {
                auto reply = make_iq_result(iq_view(req));
                auto b = reply.root().append("bind", detail::bind_ns);
                b.append("jid").set_text(full.str());
                co_await s.send(reply.root());
                s.set_peer_address(full);
                negotiate_result r;
                r.gained = session_state::ready;
                co_return r;
            }
            auto err = make_error_reply(req, *refusal);
            co_await s.send(err.root());
            if (attempt >= 2) fail(make_error_code(errc::bind_failed), "resource binding failed three times");
            auto next = co_await s.receive();
            if (!is_bind_request(next.root()))
                fail(make_error_code(stream_errc::not_authorized), "a stanza before resource binding");
            request = std::move(next);
        }
    }

private:
    static bool is_bind_request(xml::node e) noexcept {
        if (!e || e.name() != "iq" || e.ns() != xml::ns::client) return false;
        iq_view v(e);
        return v.type() == iq_type::set && !v.id().empty() && e.child("bind", detail::bind_ns);
    }

    resource_claim claim_;
};

// --- The negotiator ---------------------------------------------------------------

std::size_t count_children(xml::node n) {
    std::size_t k = 0;
    for ([[maybe_unused]] auto c : xml::children(n)) ++k;
    return k;
}

bool is_stanza(xml::node e) noexcept {
    return e.ns() == xml::ns::client && (e.name() == "message" || e.name() == "presence" || e.name() == "iq");
}

// A feature's failure is the client's: it gets a stream error (4.9.1.1).
[[noreturn]] void rethrow_as_stream_error(const boost::system::system_error& e) {
    const auto& ec = e.code();
    std::string text = e.what();
    // 6.4.5: past the retries, policy-violation; likewise a bind that keeps failing.
    if (ec.category() == sasl::sasl_category() || ec == errc::bind_failed)
        fail(make_error_code(stream_errc::policy_violation), text);
    // Something else than the exchange's next step, before authentication.
    if (ec == errc::unexpected_element) fail(make_error_code(stream_errc::not_authorized), text);
    throw;
}

class server_negotiator final : public negotiator {
public:
    server_negotiator(std::string domain, std::vector<std::shared_ptr<const stream_feature>> features)
        : domain_(jid::parse(domain)), features_(std::move(features)) {}

    asio::awaitable<void> run(negotiation_io& io) override {
        for (;;) {
            auto header = co_await io.receive_header();
            std::string text;
            if (auto ec = detail::check_stream_header(header, xml::ns::client, text)) fail(ec, text);
            // 4.7.1: 'to' names the service; another domain is host-unknown.
            if (!header.to.empty()) {
                boost::system::error_code ec;
                auto to = jid::parse(header.to, ec);
                if (ec || to != domain_)
                    fail(make_error_code(stream_errc::host_unknown), "this server does not serve '" + header.to + "'");
            }
            co_await io.open_stream();

            // 4.3.2: the features this state allows.
            xml::element features("stream:features", xml::ns::stream);
            std::vector<const stream_feature*> listed;
            for (const auto& f : features_) {
                if (!has_all(io.state(), f->necessary()) || has_any(io.state(), f->prohibited())) continue;
                // A feature that appended nothing has nothing to offer now
                // (e.g. SASL before TLS when TLS is required).
                const auto before = count_children(features.root());
                (void)co_await f->list(features.root(), io);
                if (count_children(features.root()) != before) listed.push_back(f.get());
            }
            co_await io.send(features.root());
            if (listed.empty()) {
                if (has_all(io.state(), session_state::ready)) co_return;
                fail(make_error_code(errc::negotiation_stuck), "nothing to offer the client in this state");
            }

            bool restart = false;
            while (!restart) {
                auto e = co_await io.receive();
                auto root = e.root();
                auto it = std::find_if(listed.begin(), listed.end(),
                                       [&](const stream_feature* f) { return f->starts_with(root); });
                if (it == listed.end()) {
                    // 6.4 / 4.9.3.12: no stanza before authentication (and binding).
                    if (is_stanza(root))
                        fail(make_error_code(stream_errc::not_authorized),
                             "<" + std::string(root.name()) + "/> before the stream was negotiated");
                    fail(make_error_code(stream_errc::unsupported_stanza_type),
                         "<" + std::string(root.qname()) + "/> is not a feature offered now");
                }
                const stream_feature* f = *it;
                std::any data = std::move(e);
                negotiate_result r;
                try {
                    r = co_await f->negotiate(io, data);
                } catch (const boost::system::system_error& ex) {
                    rethrow_as_stream_error(ex);
                }
                io.add_state(r.gained);
                if (r.new_transport) {
                    io.replace_transport(std::move(r.new_transport));
                    restart = true;
                }
                restart = restart || r.restart;
                listed.erase(std::find(listed.begin(), listed.end(), f));
                if (!restart && has_all(io.state(), session_state::ready)) co_return;
            }
        }
    }

private:
    jid domain_;
    std::vector<std::shared_ptr<const stream_feature>> features_;
};

} // namespace

std::shared_ptr<const stream_feature> starttls_server_feature(tls::context server_ctx, bool required) {
    return std::make_shared<starttls_server>(std::move(server_ctx), required);
}

std::shared_ptr<const stream_feature> bind_server_feature(resource_claim claim) {
    return std::make_shared<bind_server>(std::move(claim));
}

std::shared_ptr<negotiator> make_server_negotiator(std::string domain,
                                                   std::vector<std::shared_ptr<const stream_feature>> features) {
    return std::make_shared<server_negotiator>(std::move(domain), std::move(features));
}

} // namespace xmpp
