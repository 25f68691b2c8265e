#include "store/libpq.h"

#include "util/shared_library.h"

namespace ik::store {

const Libpq& libpq() {
    static const Libpq functions = [] {
        static SharedLibrary library("libpq.so.5", "libpq5", ExitCode::database);
        Libpq f;
#define IK_LIBPQ_BIND(name) library.bind(f.name, #name);
        IK_LIBPQ_FUNCTIONS(IK_LIBPQ_BIND)
#undef IK_LIBPQ_BIND
        return f;
    }();
    return functions;
}

}  // namespace ik::store
