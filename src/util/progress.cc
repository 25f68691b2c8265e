#include "util/progress.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "util/output.h"

namespace ik {
namespace {

bool turned_off = false;

// A terminal that cannot redraw a line (TERM=dumb: Emacs shells, some CI log viewers) would
// show every redraw as a new line of text.
bool terminal_can_redraw() {
    const char* term = std::getenv("TERM");
    return out::stderr_is_terminal() && !(term && std::strcmp(term, "dumb") == 0);
}

}  // namespace

void Progress::turn_off() { turned_off = true; }

Progress::Progress(std::string label, bool wanted)
    : label_(std::move(label)), enabled_(wanted && !turned_off && terminal_can_redraw()),
      start_(std::chrono::steady_clock::now()), last_draw_() {}

void Progress::update(uint64_t done, uint64_t total) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && done < total) return;
    last_draw_ = now;
    drawn_ = true;
    double seconds = std::chrono::duration<double>(now - start_).count();
    double rate = seconds > 0 ? done / seconds : 0;
    double eta = rate > 0 && total > done ? (total - done) / rate : 0;
    int width = 30;
    int filled = total ? static_cast<int>(width * done / total) : width;
    std::string line = fmt::format("{} [{}{}] {}/{}  {:.0f}/s  ETA {:.0f}s ", label_, std::string(filled, '#'),
                                   std::string(width - filled, '.'), done, total, rate, eta);
    // Pad over a longer previous line instead of erasing it with an escape sequence.
    size_t pad = drawn_width_ > line.size() ? drawn_width_ - line.size() : 0;
    std::fprintf(stderr, "\r%s%s", line.c_str(), std::string(pad, ' ').c_str());
    drawn_width_ = line.size() + pad;
    std::fflush(stderr);
}

void Progress::finish() {
    if (enabled_ && drawn_) std::fprintf(stderr, "\r%s\r", std::string(drawn_width_, ' ').c_str());
    drawn_ = false;
    drawn_width_ = 0;
}

}  // namespace ik
