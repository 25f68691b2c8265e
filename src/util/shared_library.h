// A shared library opened the first time one of its functions is needed.
//
// libcurl and libpq pull in some thirty further libraries (OpenSSL, GnuTLS, LDAP, Kerberos, …)
// whose loading and symbol binding is most of the start-up time of a short command. Most runs
// use neither (SQLite and a native key file), so they are opened only when a PostgreSQL
// connection or an HTTP request is made. bench/README.md has the measurements.
#pragma once

#include <mutex>
#include <string>

#include "util/error.h"

namespace ik {

class SharedLibrary {
public:
    // `soname` as linked at build time (e.g. "libpq.so.5"); `package` names the Debian package
    // that provides it, for the error message; `code` is the exit code when it is missing.
    SharedLibrary(std::string soname, std::string package, ExitCode code);

    // The address of `name`, opening the library on first use. Throws ik::Error(code).
    void* symbol(const char* name);

    template <typename Function>
    void bind(Function*& target, const char* name) {
        target = reinterpret_cast<Function*>(symbol(name));
    }

private:
    void open();

    std::string soname_, package_;
    ExitCode code_;
    std::once_flag opened_;
    void* handle_ = nullptr;
};

}  // namespace ik

// A library's functions are listed once, as an X-macro LIST(X) of their names; then
//   struct Table { LIST(IK_FUNCTION_POINTER) };        one typed pointer per function, and
//   LIST(IK_BIND_FUNCTION)                             with `library` and `table` in scope, binds them.
#define IK_FUNCTION_POINTER(name) decltype(&::name) name = nullptr;
#define IK_BIND_FUNCTION(name) library.bind(table.name, #name);
