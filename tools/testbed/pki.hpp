// Throwaway certificate authority and server certificates for tests, made with
// the openssl command line tool (package "openssl") in a scratch directory.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace xmpp::testbed {

/// A scratch directory removed when the object dies.
class temp_dir {
public:
    explicit temp_dir(const std::string& tag = "xmpp-test") {
        std::string tmpl = (std::filesystem::temp_directory_path() / (tag + "-XXXXXX")).string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() { std::error_code ec; std::filesystem::remove_all(path_, ec); }
    const std::filesystem::path& path() const noexcept { return path_; }
private:
    std::filesystem::path path_;
};

/// A CA (ca.pem) and leaf certificates it signs, each for one DNS name
/// (CN and subjectAltName). Keys are P-256, certificates SHA-256, valid 2 days.
class pki {
public:
    struct leaf {
        std::filesystem::path cert; ///< leaf certificate (PEM)
        std::filesystem::path key;  ///< its private key (PEM, unencrypted)
    };

    explicit pki(std::filesystem::path dir) : dir_(std::move(dir)) {
        std::filesystem::create_directories(dir_);
        run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
            " -subj /CN=asio-xmpp-test-ca -keyout " + q(dir_ / "ca.key") + " -out " + q(ca_cert()) +
            " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign");
    }

    std::filesystem::path ca_cert() const { return dir_ / "ca.pem"; }

    /// Issues a certificate for `dns_name`, signed by this CA, or self-signed
    /// when `self_signed` (not trusted by anyone).
    leaf issue(const std::string& dns_name, bool self_signed = false) const {
        leaf l{dir_ / (dns_name + (self_signed ? ".self" : "") + ".crt"),
               dir_ / (dns_name + (self_signed ? ".self" : "") + ".key")};
        auto ext = dir_ / (dns_name + ".ext");
        std::ofstream(ext) << "subjectAltName=DNS:" << dns_name
                           << "\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n";
        if (self_signed) {
            run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=" +
                q(dns_name) + " -keyout " + q(l.key) + " -out " + q(l.cert) + " -addext subjectAltName=DNS:" + q(dns_name));
            return l;
        }
        auto csr = dir_ / (dns_name + ".csr");
        run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=" + q(dns_name) +
            " -keyout " + q(l.key) + " -out " + q(csr));
        run("openssl x509 -req -in " + q(csr) + " -CA " + q(ca_cert()) + " -CAkey " + q(dir_ / "ca.key") +
            " -CAcreateserial -days 2 -sha256 -extfile " + q(ext) + " -out " + q(l.cert));
        return l;
    }

private:
    static std::string q(const std::filesystem::path& p) { return "'" + p.string() + "'"; }
    static std::string q(const std::string& s) { return "'" + s + "'"; }
    static void run(const std::string& cmd) {
        if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0)
            throw std::runtime_error("pki: command failed: " + cmd);
    }
    std::filesystem::path dir_;
};

} // namespace xmpp::testbed
