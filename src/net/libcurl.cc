#include "net/libcurl.h"

#include "util/shared_library.h"

namespace ik::net {

const Libcurl& libcurl() {
    static const Libcurl functions = [] {
        static SharedLibrary library("libcurl.so.4", "libcurl4", ExitCode::provider);
        Libcurl f;
#define IK_LIBCURL_BIND(name) library.bind(f.name, #name);
        IK_LIBCURL_FUNCTIONS(IK_LIBCURL_BIND)
#undef IK_LIBCURL_BIND
        return f;
    }();
    return functions;
}

}  // namespace ik::net
