// Mechanism choice: the strongest mechanism both sides support.
#include <xmpp/sasl.hpp>

#include "detail.hpp"

#include <algorithm>

namespace xmpp::sasl {

namespace {

// Every mechanism this library can run, strongest first (the default order).
// EXTERNAL is moved to the front by options::use_external.
constexpr std::string_view default_order[] = {
    "EXTERNAL",
    "SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1",
    "GSSAPI",
    "PLAIN",
    "ANONYMOUS",
};

bool contains(std::span<const std::string> list, std::string_view name) {
    return std::find(list.begin(), list.end(), name) != list.end();
}

bool is_scram(std::string_view n) { return n.starts_with("SCRAM-"); }
bool is_plus(std::string_view n) { return n.ends_with("-PLUS"); }

// Any SCRAM -PLUS offered means the server supports channel binding, so a
// 'y' flag would make it fail us (RFC 5802 6).
bool server_offers_plus(std::span<const std::string> offered) {
    return std::any_of(offered.begin(), offered.end(),
                       [](const std::string& n) { return is_scram(n) && is_plus(n); });
}

bool cyrus_has(std::string_view name) {
    static const auto mechs = cyrus_mechanisms(); // fixed once Cyrus is initialised
    return std::find(mechs.begin(), mechs.end(), name) != mechs.end();
}

// Whether `name` may be used here, ignoring order.
bool usable(std::string_view name, const credentials& creds, const tls_state& tls, const options& opts) {
    if (is_scram(name)) {
        if (creds.username.empty()) return false;
        if (is_plus(name)) return !detail::choose_binding(tls, true).empty();
        return true;
    }
    if (name == "EXTERNAL") return opts.use_external && cyrus_has(name);
    // In the BoringSSL build Cyrus is not let load GSSAPI when krb5 could
    // bring OpenSSL's libcrypto in (cyrus.cpp), so cyrus_has() says no.
    if (name == "GSSAPI") return cyrus_has(name);
    // PLAIN hands over the password: only inside TLS to an authenticated
    // peer (RFC 4616 6; with insecure_skip_verify anyone could answer).
    if (name == "PLAIN") return !creds.username.empty() && tls.secure && tls.peer_verified && cyrus_has(name);
    if (name == "ANONYMOUS") return opts.allow_anonymous; // native
    return false;
}

bool known(std::string_view name) {
    return std::find(std::begin(default_order), std::end(default_order), name) != std::end(default_order);
}

} // namespace

std::vector<std::string> candidates(std::span<const std::string> offered, const credentials& creds,
                                    const tls_state& tls, const options& opts) {
    std::vector<std::string> order;
    if (!opts.mechanisms.empty()) {
        for (const auto& n : opts.mechanisms)
            if (known(n) && !contains(order, n)) order.push_back(n);
    } else {
        for (auto n : default_order) order.emplace_back(n);
    }
    std::vector<std::string> out;
    for (auto& n : order)
        if (contains(offered, n) && usable(n, creds, tls, opts)) out.push_back(std::move(n));
    return out;
}

std::unique_ptr<mechanism> select(std::span<const std::string> offered, const credentials& creds,
                                  const tls_state& tls, const options& opts, std::string_view domain,
                                  error_code& ec) {
    // A configuration error shows whatever the server offers.
    if ((ec = detail::check_iteration_bounds(opts.min_iterations, opts.max_iterations))) return nullptr;
    scram_config cfg;
    cfg.min_iterations = opts.min_iterations;
    cfg.max_iterations = opts.max_iterations;
    cfg.server_lacks_plus = !server_offers_plus(offered);
    cfg.cache_salted_password = opts.cache_salted_password;
    for (const auto& name : candidates(offered, creds, tls, opts)) {
        std::unique_ptr<mechanism> m;
        if (is_scram(name)) {
            // -PLUS: the same strict choice candidates() checked.
            cfg.binding_type = is_plus(name) ? detail::choose_binding(tls, true) : std::string();
            m = make_scram(name, creds, tls, cfg, ec);
        } else if (name == "ANONYMOUS") {
            m = make_anonymous();
        } else {
            m = make_cyrus(name, creds, tls, domain, ec);
        }
        if (m) {
            ec = {};
            return m;
        }
        // Credentials SASLprep refuses would fail every mechanism: say so
        // rather than try the next one (PLAIN would send them unprepared).
        // Unusable options are the caller's to fix, not a reason to go
        // down to a weaker mechanism.
        if (ec == errc::invalid_credentials || ec == errc::invalid_configuration) return nullptr;
    }
    ec = make_error_code(errc::no_acceptable_mechanism);
    return nullptr;
}

} // namespace xmpp::sasl
