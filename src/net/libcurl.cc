#include "net/libcurl.h"

namespace ik::net {

const Libcurl& libcurl() {
    static const Libcurl functions = [] {
        static SharedLibrary library("libcurl.so.4", "libcurl4", ExitCode::provider);
        Libcurl table;
        IK_LIBCURL_FUNCTIONS(IK_BIND_FUNCTION)
        return table;
    }();
    return functions;
}

}  // namespace ik::net
