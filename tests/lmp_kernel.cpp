// A small LMP kernel in C++ that speaks the conformance kit's worker protocol (docs/conformance.md):
// per problem, two .npy frames on stdin (the losses, float64 or float32; then [p, gamma, tau] as float64)
// and one .npy frame of float64 weights on stdout. Build: g++ -O2 -std=c++17 lmp_kernel.cpp -o lmp_kernel
// `lmp_kernel --drop-last` zeroes the weight of the last loss of pools above 1,000 losses (a bug to find).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

static bool read_exact(void* out, size_t n) { return std::fread(out, 1, n, stdin) == n; }

// One frame: its values as doubles (1-D, '<f8' or '<f4'); false at the end of the input.
static bool read_frame(std::vector<double>& values) {
    unsigned char magic[8];
    if (!read_exact(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) return false;
    uint32_t header_len = 0;
    if (magic[6] == 1) { uint16_t h; if (!read_exact(&h, 2)) return false; header_len = h; }
    else if (!read_exact(&header_len, 4)) return false;
    std::string header(header_len, ' ');
    if (!read_exact(&header[0], header_len)) return false;
    bool single = header.find("'<f4'") != std::string::npos;
    size_t open = header.find("'shape': (");
    if (open == std::string::npos) return false;
    size_t n = std::strtoull(header.c_str() + open + 10, nullptr, 10);
    values.resize(n);
    if (single) {
        std::vector<float> raw(n);
        if (n && !read_exact(raw.data(), 4 * n)) return false;
        std::copy(raw.begin(), raw.end(), values.begin());
    } else if (n && !read_exact(values.data(), 8 * n)) {
        return false;
    }
    return true;
}

static void write_frame(const std::vector<double>& w) {
    std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (" + std::to_string(w.size()) + ",), }";
    while ((10 + header.size() + 1) % 64) header += ' ';
    header += '\n';
    uint16_t len = static_cast<uint16_t>(header.size());
    std::fwrite("\x93NUMPY\x01\x00", 1, 8, stdout);
    std::fwrite(&len, 2, 1, stdout);
    std::fwrite(header.data(), 1, header.size(), stdout);
    std::fwrite(w.data(), 8, w.size(), stdout);
    std::fflush(stdout);
}

// The canonical maximizer (docs/spec.md), with every power taken in logs.
static std::vector<double> weights(const std::vector<double>& l, double p, double gamma, double tau) {
    size_t n = l.size();
    std::vector<double> w(n, 0.0);
    std::vector<size_t> pos;
    for (size_t i = 0; i < n; ++i) if (l[i] > 0) pos.push_back(i);
    if (pos.empty()) return w;
    std::sort(pos.begin(), pos.end(), [&](size_t a, size_t b) { return l[a] > l[b]; });
    if (std::isinf(p)) { for (size_t i : pos) w[i] = std::min(gamma, tau); return w; }
    if (p == 1.0) {
        if (std::isinf(tau)) {  // max-pooling: the largest losses share gamma
            size_t top = 0; while (top < pos.size() && l[pos[top]] == l[pos[0]]) ++top;
            for (size_t j = 0; j < top; ++j) w[pos[j]] = gamma / top;
            return w;
        }
        double m = gamma / tau;
        if (pos.size() <= m) { for (size_t i : pos) w[i] = tau; return w; }
        double cut = l[pos[static_cast<size_t>(std::floor(m))]];
        size_t above = 0, tied = 0;
        for (size_t i : pos) { above += l[i] > cut; tied += l[i] == cut; }
        double share = std::min(tau, std::max(0.0, gamma - tau * above) / tied);
        for (size_t i : pos) w[i] = l[i] > cut ? tau : (l[i] == cut ? share : 0.0);
        return w;
    }
    double q = p / (p - 1.0);
    size_t k = pos.size();
    std::vector<double> logy(k), suffix(k + 1, -INFINITY);  // suffix[j] = log sum_{i >= j} y_i^q
    for (size_t j = 0; j < k; ++j) logy[j] = std::log(l[pos[j]]);
    for (size_t j = k; j-- > 0;) {
        double a = suffix[j + 1], b = q * logy[j], hi = std::max(a, b);
        suffix[j] = hi + std::log1p(std::exp(std::min(a, b) - hi));
    }
    if (std::isinf(tau)) {  // Hölder: gamma (y / ||y||_q)^(q-1)
        for (size_t j = 0; j < k; ++j) w[pos[j]] = gamma * std::exp((q - 1.0) * (logy[j] - suffix[0] / q));
        return w;
    }
    double m = std::pow(gamma / tau, p);
    if (k <= m) { for (size_t i : pos) w[i] = tau; return w; }
    size_t capped = 0;  // h(y_j) = j + sum_{i >= j} (y_i / y_j)^q < m: y_j is capped
    while (capped < k && capped + std::exp(suffix[capped] - q * logy[capped]) < m) ++capped;
    double log_t = (suffix[capped] - std::log(m - capped)) / q;
    for (size_t j = 0; j < k; ++j) w[pos[j]] = tau * std::exp((q - 1.0) * std::min(0.0, logy[j] - log_t));
    return w;
}

int main(int argc, char** argv) {
    bool drop_last = argc > 1 && std::string(argv[1]) == "--drop-last";
    std::vector<double> losses, params;
    while (read_frame(losses) && read_frame(params) && params.size() == 3) {
        std::vector<double> w = weights(losses, params[0], params[1], params[2]);
        if (drop_last && w.size() > 1000) w.back() = 0.0;
        write_frame(w);
    }
    return 0;
}
