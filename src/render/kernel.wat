;; The renderer's hot loops in WebAssembly SIMD, computing in float32 like gsplat: `project` (four Gaussians at
;; a time), `composite` (four pixels of a row at a time) and `readout` (a tile to bytes).
;; Assembled into kernel-wasm.ts by `npm run build:wasm`; kernel.ts lays out the memory:
;;   cloud:   the prepared cloud's FIELDS columns, `pitch` floats each
;;   params:  the camera of the render (see RenderKernel.project)
;;   proj:    16 f32 per visible Gaussian, written by `project`, and its depth key
;;   tiles:   per tile, where its run starts
;;   records: every tile's run of records, 12 x 4 bytes each: mx my a b c columns opacity r g b rows (and one
;;            spare), where columns and rows are the pixel range [first, last] where the ellipse can reach 1/255,
;;            as two i16 (first in the low half), and their depth keys
;;   run:     the records of the tile being composited, in depth order
;;   acc:     four planes (T, r, g, b) of 32 rows x 36 f32; rows are longer than 32 so that a 4-lane load at
;;            column 31 stays inside its row; T is set to 1 and r g b to 0 before each tile
;;   open:    32 i32 row masks, bit x set while pixel x of that row is still open
;;   image:   the 8-bit pixels of the band being rendered (RGB or RGBA), which `readout` writes
;; Per pixel `composite` applies gsplat's rule: sigma = 0.5 (a dx^2 + c dy^2) + b dx dy, skip sigma < 0,
;; alpha = min(0.999, opacity exp(-sigma)), skip alpha < 1/255, stop before a Gaussian that would take T to 1e-4
;; or below (exclusive), C += colour alpha T.
(module
  (memory (export "memory") 1)

  ;; Sizes in bytes, written as literals below (V8 reloads even immutable globals inside loops):
  ;; a record 48 (12 f32), an accumulator row 144 (36 f32), a plane 4608 (32 rows).

  ;; Composites `count` records at `rec` into the tile whose top-left pixel is (px0, py0) and which is `cols` x
  ;; `rows` pixels; `open_rows` is how many rows of `open` are not yet all closed. Returns how many still are.
  (func (export "composite")
    (param $rec i32) (param $count i32) (param $acc i32) (param $open i32)
    (param $px0 i32) (param $py0 i32) (param $cols i32) (param $rows i32) (param $open_rows i32)
    (result i32)
    (local $end i32) (local $y0 i32) (local $y1 i32) (local $py i32) (local $bx0 i32) (local $bx1 i32)
    (local $box i32) (local $mask i32) (local $row_mask i32) (local $x i32) (local $lanes i32) (local $stops i32)
    (local $row_ptr i32) (local $cell i32)
    (local $range i32) (local $ox f32) (local $oy f32) (local $b f32) (local $hc f32) (local $dy f32)
    (local $ha v128) (local $bdy v128) (local $hcdy2 v128) (local $op v128)
    (local $cr v128) (local $cg v128) (local $cb v128)
    (local $dx v128) (local $sigma v128) (local $alpha v128) (local $valid v128) (local $t v128) (local $next v128)
    (local $stop v128) (local $w v128) (local $e_t v128) (local $e_n v128) (local $e_f v128) (local $e_f2 v128)
    (local.set $end (i32.add (local.get $rec) (i32.mul (local.get $count) (i32.const 48))))
    (block $done
      (loop $records
        (br_if $done (i32.ge_u (local.get $rec) (local.get $end)))
        (br_if $done (i32.eqz (local.get $open_rows)))
        (block $next_record
          ;; the pixel rows and columns where the ellipse can reach 1/255 (precomputed by `project`, two i16 each),
          ;; within the tile; columns become tile-relative
          (local.set $range (i32.load offset=40 (local.get $rec)))
          (local.set $y0 (i32.shr_s (i32.shl (local.get $range) (i32.const 16)) (i32.const 16)))
          (local.set $y1 (i32.shr_s (local.get $range) (i32.const 16)))
          (if (i32.lt_s (local.get $y0) (local.get $py0)) (then (local.set $y0 (local.get $py0))))
          (if (i32.ge_s (local.get $y1) (i32.add (local.get $py0) (local.get $rows)))
            (then (local.set $y1 (i32.sub (i32.add (local.get $py0) (local.get $rows)) (i32.const 1)))))
          (br_if $next_record (i32.gt_s (local.get $y0) (local.get $y1)))
          (local.set $range (i32.load offset=20 (local.get $rec)))
          (local.set $bx0 (i32.sub (i32.shr_s (i32.shl (local.get $range) (i32.const 16)) (i32.const 16)) (local.get $px0)))
          (local.set $bx1 (i32.sub (i32.shr_s (local.get $range) (i32.const 16)) (local.get $px0)))
          (if (i32.lt_s (local.get $bx0) (i32.const 0)) (then (local.set $bx0 (i32.const 0))))
          (if (i32.ge_s (local.get $bx1) (local.get $cols)) (then (local.set $bx1 (i32.sub (local.get $cols) (i32.const 1)))))
          (br_if $next_record (i32.gt_s (local.get $bx0) (local.get $bx1)))
          ;; one to a few 4-lane groups per row for the small splats of typical assets
          (local.set $box (i32.shl
            (i32.sub (i32.shl (i32.const 2) (i32.sub (local.get $bx1) (local.get $bx0))) (i32.const 1))
            (local.get $bx0)))
          ;; dx of column x is x + ox, dy of row py is py + oy (pixel centres at +0.5, as gsplat)
          (local.set $ox (f32.sub (f32.add (f32.convert_i32_s (local.get $px0)) (f32.const 0.5)) (f32.load offset=0 (local.get $rec))))
          (local.set $oy (f32.sub (f32.const 0.5) (f32.load offset=4 (local.get $rec))))
          (local.set $b (f32.load offset=12 (local.get $rec)))
          (local.set $hc (f32.mul (f32.load offset=16 (local.get $rec)) (f32.const 0.5)))
          (local.set $ha (f32x4.splat (f32.mul (f32.load offset=8 (local.get $rec)) (f32.const 0.5))))
          (local.set $op (v128.load32_splat offset=24 (local.get $rec)))
          (local.set $cr (v128.load32_splat offset=28 (local.get $rec)))
          (local.set $cg (v128.load32_splat offset=32 (local.get $rec)))
          (local.set $cb (v128.load32_splat offset=36 (local.get $rec)))
          (local.set $py (local.get $y0))
          (loop $rows_loop
            (local.set $row_ptr (i32.add (local.get $open) (i32.shl (i32.sub (local.get $py) (local.get $py0)) (i32.const 2))))
            (local.set $row_mask (i32.load (local.get $row_ptr)))
            ;; a row none of whose open pixels lies in the box is skipped before any arithmetic
            (if (i32.and (local.get $row_mask) (local.get $box))
              (then
                (local.set $mask (local.get $row_mask))
                (local.set $dy (f32.add (f32.convert_i32_s (local.get $py)) (local.get $oy)))
                (local.set $bdy (f32x4.splat (f32.mul (local.get $b) (local.get $dy))))
                (local.set $hcdy2 (f32x4.splat (f32.mul (f32.mul (local.get $hc) (local.get $dy)) (local.get $dy))))
                (local.set $x (local.get $bx0))
                (loop $groups
                  ;; open lanes of the group's columns inside the box
                  (local.set $lanes (i32.and (i32.shr_u (i32.and (local.get $mask) (local.get $box)) (local.get $x)) (i32.const 15)))
                  (if (local.get $lanes)
                    (then
                      (local.set $dx (f32x4.add
                        (f32x4.splat (f32.add (f32.convert_i32_s (local.get $x)) (local.get $ox)))
                        (v128.const f32x4 0 1 2 3)))
                      ;; sigma = (a/2 dx + b dy) dx + c/2 dy^2
                      (local.set $sigma (f32x4.add
                        (f32x4.mul (f32x4.add (f32x4.mul (local.get $ha) (local.get $dx)) (local.get $bdy)) (local.get $dx))
                        (local.get $hcdy2)))
                      ;; alpha = opacity exp(-sigma). exp(-s), s clamped to [0, 6]: 2^-(s log2 e) = 2^n 2^f with n an integer and
                      ;; |f| <= 1/2; 2^f by its degree-7 Taylor polynomial (relative error about 2e-8, below float32 rounding) in
                      ;; Estrin's scheme, as the loop is bound by this chain's latency (Horner's form is twice as deep); written
                      ;; out here because V8 does not inline a function that returns a v128.
                      (local.set $e_t (f32x4.mul
                        (f32x4.pmin (f32x4.pmax (local.get $sigma) (v128.const f32x4 0 0 0 0)) (v128.const f32x4 6 6 6 6))
                        (v128.const f32x4 -1.4426950408889634 -1.4426950408889634 -1.4426950408889634 -1.4426950408889634)))
                      (local.set $e_n (f32x4.nearest (local.get $e_t)))
                      (local.set $e_f (f32x4.sub (local.get $e_t) (local.get $e_n)))
                      (local.set $e_f2 (f32x4.mul (local.get $e_f) (local.get $e_f)))
                      ;; (c0 + c1 f) + f^2 (c2 + c3 f) + f^4 ((c4 + c5 f) + f^2 (c6 + c7 f)), c_k = (ln 2)^k / k!, then times 2^n by
                      ;; adding n to the exponent field (n is in [-9, 0], so the result stays a normal float)
                      (local.set $alpha (f32x4.mul (local.get $op) (i32x4.add
                        (f32x4.add
                          (f32x4.add
                            (f32x4.add (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $e_f) (v128.const f32x4 0.6931471805599453 0.6931471805599453 0.6931471805599453 0.6931471805599453)))
                            (f32x4.mul (local.get $e_f2)
                              (f32x4.add (v128.const f32x4 0.2402265069591007 0.2402265069591007 0.2402265069591007 0.2402265069591007) (f32x4.mul (local.get $e_f) (v128.const f32x4 0.05550410866482158 0.05550410866482158 0.05550410866482158 0.05550410866482158)))))
                          (f32x4.mul (f32x4.mul (local.get $e_f2) (local.get $e_f2))
                            (f32x4.add
                              (f32x4.add (v128.const f32x4 0.009618129107628477 0.009618129107628477 0.009618129107628477 0.009618129107628477) (f32x4.mul (local.get $e_f) (v128.const f32x4 0.0013333558146428443 0.0013333558146428443 0.0013333558146428443 0.0013333558146428443)))
                              (f32x4.mul (local.get $e_f2)
                                (f32x4.add (v128.const f32x4 0.00015403530393381608 0.00015403530393381608 0.00015403530393381608 0.00015403530393381608) (f32x4.mul (local.get $e_f) (v128.const f32x4 1.525273380405984e-05 1.525273380405984e-05 1.525273380405984e-05 1.525273380405984e-05)))))))
                        (i32x4.shl (i32x4.trunc_sat_f32x4_s (local.get $e_n)) (i32.const 23)))))
                      (local.set $valid (v128.and
                        (v128.and
                          (f32x4.ge (local.get $sigma) (v128.const f32x4 0 0 0 0))
                          (f32x4.ge (local.get $alpha) (v128.const f32x4 0.00392156862745098 0.00392156862745098 0.00392156862745098 0.00392156862745098)))
                        (i32x4.ne
                          (v128.and (i32x4.splat (local.get $lanes)) (v128.const i32x4 1 2 4 8))
                          (v128.const i32x4 0 0 0 0))))
                      (local.set $alpha (f32x4.pmin (local.get $alpha) (v128.const f32x4 0.999 0.999 0.999 0.999)))
                      (local.set $cell (i32.add (i32.add (local.get $acc)
                        (i32.mul (i32.sub (local.get $py) (local.get $py0)) (i32.const 144)))
                        (i32.shl (local.get $x) (i32.const 2))))
                      (local.set $t (v128.load (local.get $cell)))
                      (local.set $next (f32x4.mul (local.get $t) (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $alpha))))
                      (local.set $stop (v128.and (local.get $valid) (f32x4.le (local.get $next) (v128.const f32x4 1e-4 1e-4 1e-4 1e-4))))
                      (local.set $valid (v128.andnot (local.get $valid) (local.get $stop)))
                      (local.set $w (f32x4.mul (local.get $alpha) (local.get $t)))
                      (v128.store (local.get $cell) (v128.bitselect (local.get $next) (local.get $t) (local.get $valid)))
                      (local.set $cell (i32.add (local.get $cell) (i32.const 4608)))
                      (v128.store (local.get $cell) (f32x4.add (v128.load (local.get $cell))
                        (v128.and (f32x4.mul (local.get $cr) (local.get $w)) (local.get $valid))))
                      (local.set $cell (i32.add (local.get $cell) (i32.const 4608)))
                      (v128.store (local.get $cell) (f32x4.add (v128.load (local.get $cell))
                        (v128.and (f32x4.mul (local.get $cg) (local.get $w)) (local.get $valid))))
                      (local.set $cell (i32.add (local.get $cell) (i32.const 4608)))
                      (v128.store (local.get $cell) (f32x4.add (v128.load (local.get $cell))
                        (v128.and (f32x4.mul (local.get $cb) (local.get $w)) (local.get $valid))))
                      ;; pixels that stopped close (exclusive: this Gaussian did not contribute to them)
                      (local.set $stops (i32x4.bitmask (local.get $stop)))
                      (if (local.get $stops)
                        (then (local.set $mask (i32.xor (local.get $mask) (i32.shl (local.get $stops) (local.get $x))))))))
                  (local.set $x (i32.add (local.get $x) (i32.const 4)))
                  (br_if $groups (i32.le_s (local.get $x) (local.get $bx1))))
                (if (i32.ne (local.get $mask) (local.get $row_mask))
                  (then
                    (i32.store (local.get $row_ptr) (local.get $mask))
                    (if (i32.eqz (local.get $mask))
                      (then (local.set $open_rows (i32.sub (local.get $open_rows) (i32.const 1)))))))))
            (local.set $py (i32.add (local.get $py) (i32.const 1)))
            (br_if $rows_loop (i32.le_s (local.get $py) (local.get $y1)))))
        (local.set $rec (i32.add (local.get $rec) (i32.const 48)))
        (br $records)))
    (local.get $open_rows))

  ;; Writes a composited tile's pixels as bytes into the image: C + T background, clipped to [0, 1] and
  ;; truncated like the validator's `(img * 255).to(uint8)`; alpha 255 when `channels` is 4.
  (func (export "readout")
    (param $acc i32) (param $cols i32) (param $rows i32) (param $out i32) (param $pitch i32) (param $channels i32)
    (param $br f32) (param $bg f32) (param $bb f32)
    (local $r i32) (local $x i32) (local $cell i32) (local $o i32) (local $k i32) (local $n i32) (local $pixel i32)
    (local $t v128) (local $packed v128)
    (block $done
      (loop $rows_loop
        (br_if $done (i32.ge_s (local.get $r) (local.get $rows)))
        (local.set $x (i32.const 0))
        (local.set $o (i32.add (local.get $out) (i32.mul (local.get $r) (local.get $pitch))))
        (loop $groups
          (local.set $cell (i32.add (local.get $acc) (i32.add (i32.mul (local.get $r) (i32.const 144)) (i32.shl (local.get $x) (i32.const 2)))))
          (local.set $t (v128.load (local.get $cell)))
          ;; r | g << 8 | b << 16 | 255 << 24 for four pixels
          (local.set $packed (v128.or
            (v128.or
              (call $to_byte (f32x4.add (v128.load offset=4608 (local.get $cell)) (f32x4.mul (local.get $t) (f32x4.splat (local.get $br)))))
              (i32x4.shl (call $to_byte (f32x4.add (v128.load offset=9216 (local.get $cell)) (f32x4.mul (local.get $t) (f32x4.splat (local.get $bg))))) (i32.const 8)))
            (v128.or
              (i32x4.shl (call $to_byte (f32x4.add (v128.load offset=13824 (local.get $cell)) (f32x4.mul (local.get $t) (f32x4.splat (local.get $bb))))) (i32.const 16))
              (v128.const i32x4 0xff000000 0xff000000 0xff000000 0xff000000))))
          (local.set $n (i32.sub (local.get $cols) (local.get $x)))
          (if (i32.gt_s (local.get $n) (i32.const 4)) (then (local.set $n (i32.const 4))))
          (if (i32.and (i32.eq (local.get $channels) (i32.const 4)) (i32.eq (local.get $n) (i32.const 4)))
            (then (v128.store (local.get $o) (local.get $packed)))
            (else
              (local.set $k (i32.const 0))
              (loop $pixels
                (local.set $pixel (i32x4.extract_lane 0 (i8x16.swizzle (local.get $packed)
                  (i8x16.add (i8x16.splat (i32.shl (local.get $k) (i32.const 2))) (v128.const i8x16 0 1 2 3 0 0 0 0 0 0 0 0 0 0 0 0)))))
                (if (i32.eq (local.get $channels) (i32.const 4))
                  (then (i32.store (i32.add (local.get $o) (i32.shl (local.get $k) (i32.const 2))) (local.get $pixel)))
                  (else
                    (i32.store16 (i32.add (local.get $o) (i32.mul (local.get $k) (i32.const 3))) (local.get $pixel))
                    (i32.store8 offset=2 (i32.add (local.get $o) (i32.mul (local.get $k) (i32.const 3))) (i32.shr_u (local.get $pixel) (i32.const 16)))))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br_if $pixels (i32.lt_s (local.get $k) (local.get $n))))))
          (local.set $o (i32.add (local.get $o) (i32.mul (local.get $n) (local.get $channels))))
          (local.set $x (i32.add (local.get $x) (i32.const 4)))
          (br_if $groups (i32.lt_s (local.get $x) (local.get $cols))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rows_loop))))

  ;; clip(v, 0, 1) * 255, truncated, as i32 lanes (NaN gives 0)
  (func $to_byte (param $v v128) (result v128)
    (i32x4.trunc_sat_f32x4_u (f32x4.mul
      (f32x4.pmin (f32x4.pmax (local.get $v) (v128.const f32x4 0 0 0 0)) (v128.const f32x4 1 1 1 1))
      (v128.const f32x4 255 255 255 255))))

  ;; Projects Gaussians 4 at a time (the cloud is stored as FIELDS columns of `pitch` floats at `cloud`) and
  ;; writes one 16-float record per visible Gaussian to `proj` (mx my a b c columns opacity r g b rows x0 y0 x1 y1 -,
  ;; the last four its tile rectangle) and its depth key to `keys`; returns how many. `params` holds the camera
  ;; (see RenderKernel.project); `scratch` is 256 bytes for the transposed records and 16 for the depth keys.
  ;; As gsplat: centres outside [near, far] culled, Jacobian with clamped x/z and y/z, 2D covariance plus 0.3 px,
  ;; extent ceil(min(3.33, sqrt(2 ln(255 opacity))) sigma), footprints off the image culled.
  (func (export "project")
    (param $cloud i32) (param $pitch i32) (param $count i32) (param $params i32) (param $proj i32) (param $keys i32)
    (param $scratch i32) (result i32)
    (local $i i32) (local $v i32) (local $column i32) (local $pitch4 i32) (local $bits i32) (local $lane i32)
    (local $src i32) (local $dst i32) (local $depths i32)
    (local $x v128) (local $y v128) (local $z v128) (local $tz v128) (local $valid v128) (local $tx v128) (local $ty v128) (local $rz v128) (local $mx v128) (local $my v128) (local $ux v128) (local $uy v128) (local $j0 v128) (local $j2 v128) (local $k1 v128) (local $k2 v128) (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $b0 v128) (local $b1 v128) (local $b2 v128) (local $sxx v128) (local $sxy v128) (local $sxz v128) (local $syy v128) (local $syz v128) (local $szz v128) (local $u0 v128) (local $u1 v128) (local $u2 v128) (local $w0 v128) (local $w1 v128) (local $w2 v128) (local $cxx v128) (local $cxy v128) (local $cyy v128) (local $det v128) (local $ln_reach v128) (local $extend v128) (local $rad_x v128) (local $rad_y v128) (local $rx0 v128) (local $rx1 v128) (local $ry0 v128) (local $ry1 v128) (local $inv v128) (local $L v128) (local $q0 v128) (local $q1 v128) (local $q2 v128) (local $q3 v128)
    (local.set $pitch4 (i32.shl (local.get $pitch) (i32.const 2)))
    (local.set $depths (i32.add (local.get $scratch) (i32.const 256)))
    (block $done
      (loop $gaussians
      (br_if $done (i32.ge_s (local.get $i) (local.get $count)))
      (local.set $column (i32.add (local.get $cloud) (i32.shl (local.get $i) (i32.const 2))))
      (local.set $x (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 0)))))
      (local.set $y (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 1)))))
      (local.set $z (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 2)))))
      (local.set $tz (f32x4.add (f32x4.add (f32x4.add (f32x4.mul (v128.load32_splat offset=24 (local.get $params)) (local.get $x)) (f32x4.mul (v128.load32_splat offset=28 (local.get $params)) (local.get $y))) (f32x4.mul (v128.load32_splat offset=32 (local.get $params)) (local.get $z))) (v128.load32_splat offset=44 (local.get $params))))
      ;; lanes past the last Gaussian, and centres outside [near, far], are culled
      (local.set $valid (v128.and
        (i32x4.lt_s (i32x4.add (i32x4.splat (local.get $i)) (v128.const i32x4 0 1 2 3)) (i32x4.splat (local.get $count)))
        (v128.and (f32x4.ge (local.get $tz) (v128.load32_splat offset=72 (local.get $params))) (f32x4.le (local.get $tz) (v128.load32_splat offset=76 (local.get $params))))))
      (v128.store (local.get $depths) (local.get $tz))
      (local.set $tx (f32x4.add (f32x4.add (f32x4.add (f32x4.mul (v128.load32_splat offset=0 (local.get $params)) (local.get $x)) (f32x4.mul (v128.load32_splat offset=4 (local.get $params)) (local.get $y))) (f32x4.mul (v128.load32_splat offset=8 (local.get $params)) (local.get $z))) (v128.load32_splat offset=36 (local.get $params))))
      (local.set $ty (f32x4.add (f32x4.add (f32x4.add (f32x4.mul (v128.load32_splat offset=12 (local.get $params)) (local.get $x)) (f32x4.mul (v128.load32_splat offset=16 (local.get $params)) (local.get $y))) (f32x4.mul (v128.load32_splat offset=20 (local.get $params)) (local.get $z))) (v128.load32_splat offset=40 (local.get $params))))
      (local.set $rz (f32x4.div (v128.const f32x4 1 1 1 1) (local.get $tz)))
      (local.set $mx (f32x4.add (f32x4.mul (f32x4.mul (v128.load32_splat offset=48 (local.get $params)) (local.get $tx)) (local.get $rz)) (v128.load32_splat offset=56 (local.get $params))))
      (local.set $my (f32x4.add (f32x4.mul (f32x4.mul (v128.load32_splat offset=52 (local.get $params)) (local.get $ty)) (local.get $rz)) (v128.load32_splat offset=60 (local.get $params))))
      ;; the Jacobian uses x/z and y/z clamped to the image plus 30 % (lim_x_neg, lim_y_neg are stored negated)
      (local.set $ux (f32x4.pmin (f32x4.pmax (f32x4.mul (local.get $tx) (local.get $rz)) (v128.load32_splat offset=84 (local.get $params))) (v128.load32_splat offset=80 (local.get $params))))
      (local.set $uy (f32x4.pmin (f32x4.pmax (f32x4.mul (local.get $ty) (local.get $rz)) (v128.load32_splat offset=92 (local.get $params))) (v128.load32_splat offset=88 (local.get $params))))
      ;; T = J W: the Jacobian's rows times the world-to-camera rotation
      (local.set $j0 (f32x4.mul (v128.load32_splat offset=48 (local.get $params)) (local.get $rz)))
      (local.set $j2 (f32x4.mul (f32x4.mul (v128.load32_splat offset=112 (local.get $params)) (local.get $ux)) (local.get $rz)))
      (local.set $k1 (f32x4.mul (v128.load32_splat offset=52 (local.get $params)) (local.get $rz)))
      (local.set $k2 (f32x4.mul (f32x4.mul (v128.load32_splat offset=116 (local.get $params)) (local.get $uy)) (local.get $rz)))
      (local.set $a0 (f32x4.add (f32x4.mul (local.get $j0) (v128.load32_splat offset=0 (local.get $params))) (f32x4.mul (local.get $j2) (v128.load32_splat offset=24 (local.get $params)))))
      (local.set $a1 (f32x4.add (f32x4.mul (local.get $j0) (v128.load32_splat offset=4 (local.get $params))) (f32x4.mul (local.get $j2) (v128.load32_splat offset=28 (local.get $params)))))
      (local.set $a2 (f32x4.add (f32x4.mul (local.get $j0) (v128.load32_splat offset=8 (local.get $params))) (f32x4.mul (local.get $j2) (v128.load32_splat offset=32 (local.get $params)))))
      (local.set $b0 (f32x4.add (f32x4.mul (local.get $k1) (v128.load32_splat offset=12 (local.get $params))) (f32x4.mul (local.get $k2) (v128.load32_splat offset=24 (local.get $params)))))
      (local.set $b1 (f32x4.add (f32x4.mul (local.get $k1) (v128.load32_splat offset=16 (local.get $params))) (f32x4.mul (local.get $k2) (v128.load32_splat offset=28 (local.get $params)))))
      (local.set $b2 (f32x4.add (f32x4.mul (local.get $k1) (v128.load32_splat offset=20 (local.get $params))) (f32x4.mul (local.get $k2) (v128.load32_splat offset=32 (local.get $params)))))
      ;; 2D covariance J W Sigma W^T J^T, plus 0.3 px on the diagonal
      (local.set $sxx (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 3)))))
      (local.set $sxy (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 4)))))
      (local.set $sxz (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 5)))))
      (local.set $syy (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 6)))))
      (local.set $syz (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 7)))))
      (local.set $szz (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 8)))))
      (local.set $u0 (f32x4.add (f32x4.add (f32x4.mul (local.get $sxx) (local.get $a0)) (f32x4.mul (local.get $sxy) (local.get $a1))) (f32x4.mul (local.get $sxz) (local.get $a2))))
      (local.set $u1 (f32x4.add (f32x4.add (f32x4.mul (local.get $sxy) (local.get $a0)) (f32x4.mul (local.get $syy) (local.get $a1))) (f32x4.mul (local.get $syz) (local.get $a2))))
      (local.set $u2 (f32x4.add (f32x4.add (f32x4.mul (local.get $sxz) (local.get $a0)) (f32x4.mul (local.get $syz) (local.get $a1))) (f32x4.mul (local.get $szz) (local.get $a2))))
      (local.set $w0 (f32x4.add (f32x4.add (f32x4.mul (local.get $sxx) (local.get $b0)) (f32x4.mul (local.get $sxy) (local.get $b1))) (f32x4.mul (local.get $sxz) (local.get $b2))))
      (local.set $w1 (f32x4.add (f32x4.add (f32x4.mul (local.get $sxy) (local.get $b0)) (f32x4.mul (local.get $syy) (local.get $b1))) (f32x4.mul (local.get $syz) (local.get $b2))))
      (local.set $w2 (f32x4.add (f32x4.add (f32x4.mul (local.get $sxz) (local.get $b0)) (f32x4.mul (local.get $syz) (local.get $b1))) (f32x4.mul (local.get $szz) (local.get $b2))))
      (local.set $cxx (f32x4.add (f32x4.add (f32x4.add (f32x4.mul (local.get $a0) (local.get $u0)) (f32x4.mul (local.get $a1) (local.get $u1))) (f32x4.mul (local.get $a2) (local.get $u2))) (v128.const f32x4 0.3 0.3 0.3 0.3)))
      (local.set $cxy (f32x4.add (f32x4.add (f32x4.mul (local.get $b0) (local.get $u0)) (f32x4.mul (local.get $b1) (local.get $u1))) (f32x4.mul (local.get $b2) (local.get $u2))))
      (local.set $cyy (f32x4.add (f32x4.add (f32x4.add (f32x4.mul (local.get $b0) (local.get $w0)) (f32x4.mul (local.get $b1) (local.get $w1))) (f32x4.mul (local.get $b2) (local.get $w2))) (v128.const f32x4 0.3 0.3 0.3 0.3)))
      (local.set $det (f32x4.sub (f32x4.mul (local.get $cxx) (local.get $cyy)) (f32x4.mul (local.get $cxy) (local.get $cxy))))
      (local.set $valid (v128.and (local.get $valid) (f32x4.gt (local.get $det) (v128.const f32x4 0 0 0 0))))
      ;; extent per axis: ceil(min(3.33, sqrt(2 ln(255 opacity))) sigma); footprints off the image are culled
      (local.set $ln_reach (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 13)))))
      (local.set $extend (f32x4.pmin (f32x4.sqrt (f32x4.mul (local.get $ln_reach) (v128.const f32x4 2 2 2 2))) (v128.const f32x4 3.33 3.33 3.33 3.33)))
      (local.set $rad_x (f32x4.ceil (f32x4.mul (local.get $extend) (f32x4.sqrt (local.get $cxx)))))
      (local.set $rad_y (f32x4.ceil (f32x4.mul (local.get $extend) (f32x4.sqrt (local.get $cyy)))))
      (local.set $valid (v128.andnot (local.get $valid)
        (v128.and (f32x4.le (local.get $rad_x) (v128.const f32x4 0 0 0 0)) (f32x4.le (local.get $rad_y) (v128.const f32x4 0 0 0 0)))))
      (local.set $valid (v128.and (local.get $valid) (v128.and
        (v128.and
          (f32x4.gt (f32x4.add (local.get $mx) (local.get $rad_x)) (v128.const f32x4 0 0 0 0))
          (f32x4.lt (f32x4.sub (local.get $mx) (local.get $rad_x)) (v128.load32_splat offset=64 (local.get $params))))
        (v128.and
          (f32x4.gt (f32x4.add (local.get $my) (local.get $rad_y)) (v128.const f32x4 0 0 0 0))
          (f32x4.lt (f32x4.sub (local.get $my) (local.get $rad_y)) (v128.load32_splat offset=68 (local.get $params)))))))
      ;; tile rectangle [x0, x1) x [y0, y1), rows limited to the band being rendered
      (local.set $rx0 (f32x4.pmax (f32x4.floor (f32x4.div (f32x4.sub (local.get $mx) (local.get $rad_x)) (v128.load32_splat offset=96 (local.get $params)))) (v128.const f32x4 0 0 0 0)))
      (local.set $rx1 (f32x4.pmin (f32x4.ceil (f32x4.div (f32x4.add (local.get $mx) (local.get $rad_x)) (v128.load32_splat offset=96 (local.get $params)))) (v128.load32_splat offset=108 (local.get $params))))
      (local.set $ry0 (f32x4.pmax (f32x4.floor (f32x4.div (f32x4.sub (local.get $my) (local.get $rad_y)) (v128.load32_splat offset=96 (local.get $params)))) (v128.load32_splat offset=100 (local.get $params))))
      (local.set $ry1 (f32x4.pmin (f32x4.ceil (f32x4.div (f32x4.add (local.get $my) (local.get $rad_y)) (v128.load32_splat offset=96 (local.get $params)))) (v128.load32_splat offset=104 (local.get $params))))
      (local.set $valid (v128.and (local.get $valid)
        (v128.and (f32x4.lt (local.get $rx0) (local.get $rx1)) (f32x4.lt (local.get $ry0) (local.get $ry1)))))
      (local.set $bits (i32x4.bitmask (local.get $valid)))
      (if (local.get $bits)
        (then
          (local.set $inv (f32x4.div (v128.const f32x4 1 1 1 1) (local.get $det)))
          (local.set $L (f32x4.mul (local.get $ln_reach) (v128.const f32x4 2 2 2 2)))
          ;; record fields in four groups of four: mx my a b | c columns opacity r | g b rows x0 | y0 x1 y1 -
          (local.set $q0 (local.get $mx))
          (local.set $q1 (local.get $my))
          (local.set $q2 (f32x4.mul (local.get $cyy) (local.get $inv)))
          (local.set $q3 (f32x4.mul (f32x4.neg (local.get $cxy)) (local.get $inv)))
          (call $transpose (local.get $q0) (local.get $q1) (local.get $q2) (local.get $q3) (local.get $scratch))
          (local.set $q0 (f32x4.mul (local.get $cxx) (local.get $inv)))
          ;; a dx^2 + 2 b dx dy + c dy^2 <= L, where alpha can reach 1/255, spans |dx| <= sqrt(L cov_xx) and
          ;; |dy| <= sqrt(L cov_yy); widened by 1/64 px against rounding (each pixel is then tested exactly)
          (local.set $q1 (call $pixel_range (local.get $mx)
            (f32x4.add (f32x4.sqrt (f32x4.mul (local.get $L) (local.get $cxx))) (v128.const f32x4 0.015625 0.015625 0.015625 0.015625))
            (v128.load32_splat offset=64 (local.get $params))))
          (local.set $q2 (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 12)))))
          (local.set $q3 (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 9)))))
          (call $transpose (local.get $q0) (local.get $q1) (local.get $q2) (local.get $q3) (i32.add (local.get $scratch) (i32.const 16)))
          (local.set $q0 (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 10)))))
          (local.set $q1 (v128.load (i32.add (local.get $column) (i32.mul (local.get $pitch4) (i32.const 11)))))
          (local.set $q2 (call $pixel_range (local.get $my)
            (f32x4.add (f32x4.sqrt (f32x4.mul (local.get $L) (local.get $cyy))) (v128.const f32x4 0.015625 0.015625 0.015625 0.015625))
            (v128.load32_splat offset=68 (local.get $params))))
          (call $transpose (local.get $q0) (local.get $q1) (local.get $q2) (local.get $rx0) (i32.add (local.get $scratch) (i32.const 32)))
          (call $transpose (local.get $ry0) (local.get $rx1) (local.get $ry1) (v128.const f32x4 0 0 0 0) (i32.add (local.get $scratch) (i32.const 48)))
          ;; each lane's record goes to slot v, and v advances only for visible lanes (branch-free compaction)
          (local.set $lane (i32.const 0))
          (loop $lanes
            (local.set $src (i32.add (local.get $scratch) (i32.shl (local.get $lane) (i32.const 6))))
            (local.set $dst (i32.add (local.get $proj) (i32.shl (local.get $v) (i32.const 6))))
            (v128.store offset=0 (local.get $dst) (v128.load offset=0 (local.get $src)))
            (v128.store offset=16 (local.get $dst) (v128.load offset=16 (local.get $src)))
            (v128.store offset=32 (local.get $dst) (v128.load offset=32 (local.get $src)))
            (v128.store offset=48 (local.get $dst) (v128.load offset=48 (local.get $src)))
            ;; the depth key: positive floats order like their bit patterns
            (i32.store (i32.add (local.get $keys) (i32.shl (local.get $v) (i32.const 2)))
              (i32.load (i32.add (local.get $depths) (i32.shl (local.get $lane) (i32.const 2)))))
            (local.set $v (i32.add (local.get $v) (i32.and (i32.shr_u (local.get $bits) (local.get $lane)) (i32.const 1))))
            (local.set $lane (i32.add (local.get $lane) (i32.const 1)))
            (br_if $lanes (i32.lt_u (local.get $lane) (i32.const 4))))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $gaussians)))
    (local.get $v))

  ;; The pixels [first, last] whose centres lie within `half` of `centre` (first = ceil(centre - 0.5 - half),
  ;; last = floor(centre - 0.5 + half)), limited to [-1, size], packed as two i16: first | last << 16.
  (func $pixel_range (param $centre v128) (param $half v128) (param $size v128) (result v128)
    (local $c v128)
    (local.set $c (f32x4.sub (local.get $centre) (v128.const f32x4 0.5 0.5 0.5 0.5)))
    (v128.or
      (v128.and
        (i32x4.trunc_sat_f32x4_s (f32x4.pmin (f32x4.pmax (f32x4.ceil (f32x4.sub (local.get $c) (local.get $half)))
          (v128.const f32x4 -1 -1 -1 -1)) (local.get $size)))
        (v128.const i32x4 0xffff 0xffff 0xffff 0xffff))
      (i32x4.shl
        (i32x4.trunc_sat_f32x4_s (f32x4.pmin (f32x4.pmax (f32x4.floor (f32x4.add (local.get $c) (local.get $half)))
          (v128.const f32x4 -1 -1 -1 -1)) (local.get $size)))
        (i32.const 16))))

  ;; Stores the 4x4 transpose of rows a b c d: lane k of each row, in order, at out + 64 k (16 bytes each).
  (func $transpose (param $a v128) (param $b v128) (param $c v128) (param $d v128) (param $out i32)
    (local $ab_lo v128) (local $ab_hi v128) (local $cd_lo v128) (local $cd_hi v128)
    (local.set $ab_lo (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $a) (local.get $b)))
    (local.set $ab_hi (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $a) (local.get $b)))
    (local.set $cd_lo (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $c) (local.get $d)))
    (local.set $cd_hi (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $c) (local.get $d)))
    (v128.store offset=0 (local.get $out) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $ab_lo) (local.get $cd_lo)))
    (v128.store offset=64 (local.get $out) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $ab_lo) (local.get $cd_lo)))
    (v128.store offset=128 (local.get $out) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $ab_hi) (local.get $cd_hi)))
    (v128.store offset=192 (local.get $out) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $ab_hi) (local.get $cd_hi))))

  ;; Adds each projected record's tiles to count[tile + 1] (`proj`: n records of 16 f32, the tile rectangle
  ;; x0 y0 x1 y1 at floats 11-14); returns the number of (tile, record) pairs, counted in 64 bits and
  ;; saturated at 2^31 - 1 so that a pathological cloud reaches the caller's limit instead of wrapping.
  (func (export "count_tiles") (param $proj i32) (param $n i32) (param $tiles_x i32) (param $count i32) (result i32)
    (local $end i32) (local $x0 i32) (local $y0 i32) (local $x1 i32) (local $y1 i32) (local $ty i32) (local $t i32)
    (local $e i32) (local $total i64)
    (local.set $end (i32.add (local.get $proj) (i32.shl (local.get $n) (i32.const 6))))
    (block $done
      (loop $records
        (br_if $done (i32.ge_u (local.get $proj) (local.get $end)))
        (local.set $x0 (i32.trunc_sat_f32_s (f32.load offset=44 (local.get $proj))))
        (local.set $y0 (i32.trunc_sat_f32_s (f32.load offset=48 (local.get $proj))))
        (local.set $x1 (i32.trunc_sat_f32_s (f32.load offset=52 (local.get $proj))))
        (local.set $y1 (i32.trunc_sat_f32_s (f32.load offset=56 (local.get $proj))))
        (local.set $total (i64.add (local.get $total)
          (i64.mul (i64.extend_i32_s (i32.sub (local.get $x1) (local.get $x0))) (i64.extend_i32_s (i32.sub (local.get $y1) (local.get $y0))))))
        (local.set $ty (local.get $y0))
        (block $rows_done
          (loop $rows
            (br_if $rows_done (i32.ge_s (local.get $ty) (local.get $y1)))
            (local.set $t (i32.add (local.get $count)
              (i32.shl (i32.add (i32.mul (local.get $ty) (local.get $tiles_x)) (local.get $x0)) (i32.const 2))))
            (local.set $e (i32.add (local.get $t) (i32.shl (i32.sub (local.get $x1) (local.get $x0)) (i32.const 2))))
            (loop $tiles
              (i32.store offset=4 (local.get $t) (i32.add (i32.load offset=4 (local.get $t)) (i32.const 1)))
              (local.set $t (i32.add (local.get $t) (i32.const 4)))
              (br_if $tiles (i32.lt_u (local.get $t) (local.get $e))))
            (local.set $ty (i32.add (local.get $ty) (i32.const 1)))
            (br $rows)))
        (local.set $proj (i32.add (local.get $proj) (i32.const 64)))
        (br $records)))
    (select (i32.const 0x7fffffff) (i32.wrap_i64 (local.get $total))
      (i64.gt_s (local.get $total) (i64.const 0x7fffffff))))

  ;; Copies each projected record (its first 12 floats: the 11 of a run record and one spare) with its depth
  ;; key into the runs of its tiles: record i goes to slot cursor[t]++ of every tile t it covers (48 bytes per
  ;; slot in `records`, the key in `record_keys`). Walks the records in projection order: sequential reads.
  (func (export "fill_tiles")
    (param $proj i32) (param $keys i32) (param $n i32) (param $tiles_x i32) (param $cursor i32)
    (param $records i32) (param $record_keys i32)
    (local $end i32) (local $x0 i32) (local $y0 i32) (local $x1 i32) (local $y1 i32) (local $ty i32) (local $t i32)
    (local $e i32) (local $slot i32) (local $dst i32) (local $key i32)
    (local $v0 v128) (local $v1 v128) (local $v2 v128)
    (local.set $end (i32.add (local.get $proj) (i32.shl (local.get $n) (i32.const 6))))
    (block $done
      (loop $gaussians
        (br_if $done (i32.ge_u (local.get $proj) (local.get $end)))
        (local.set $v0 (v128.load offset=0 (local.get $proj)))
        (local.set $v1 (v128.load offset=16 (local.get $proj)))
        (local.set $v2 (v128.load offset=32 (local.get $proj)))
        (local.set $key (i32.load (local.get $keys)))
        (local.set $x0 (i32.trunc_sat_f32_s (f32.load offset=44 (local.get $proj))))
        (local.set $y0 (i32.trunc_sat_f32_s (f32.load offset=48 (local.get $proj))))
        (local.set $x1 (i32.trunc_sat_f32_s (f32.load offset=52 (local.get $proj))))
        (local.set $y1 (i32.trunc_sat_f32_s (f32.load offset=56 (local.get $proj))))
        (local.set $ty (local.get $y0))
        (block $rows_done
          (loop $rows
            (br_if $rows_done (i32.ge_s (local.get $ty) (local.get $y1)))
            (local.set $t (i32.add (local.get $cursor)
              (i32.shl (i32.add (i32.mul (local.get $ty) (local.get $tiles_x)) (local.get $x0)) (i32.const 2))))
            (local.set $e (i32.add (local.get $t) (i32.shl (i32.sub (local.get $x1) (local.get $x0)) (i32.const 2))))
            (loop $tiles
              (local.set $slot (i32.load (local.get $t)))
              (i32.store (local.get $t) (i32.add (local.get $slot) (i32.const 1)))
              (i32.store (i32.add (local.get $record_keys) (i32.shl (local.get $slot) (i32.const 2))) (local.get $key))
              (local.set $dst (i32.add (local.get $records) (i32.mul (local.get $slot) (i32.const 48))))
              (v128.store offset=0 (local.get $dst) (local.get $v0))
              (v128.store offset=16 (local.get $dst) (local.get $v1))
              (v128.store offset=32 (local.get $dst) (local.get $v2))
              (local.set $t (i32.add (local.get $t) (i32.const 4)))
              (br_if $tiles (i32.lt_u (local.get $t) (local.get $e))))
            (local.set $ty (i32.add (local.get $ty) (i32.const 1)))
            (br $rows)))
        (local.set $proj (i32.add (local.get $proj) (i32.const 64)))
        (local.set $keys (i32.add (local.get $keys) (i32.const 4)))
        (br $gaussians))))

  ;; Copies the n records of the run starting at slot `begin` into `run`, record i to slot rank[i]: reading the
  ;; run in memory order (which the prefetcher streams in) and writing in depth order into `run`, which is small
  ;; enough to stay in cache.
  (func (export "scatter_run") (param $records i32) (param $begin i32) (param $rank i32) (param $n i32) (param $run i32)
    (local $src i32) (local $end i32) (local $dst i32)
    (local.set $src (i32.add (local.get $records) (i32.mul (local.get $begin) (i32.const 48))))
    (local.set $end (i32.add (local.get $rank) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $records_loop
        (br_if $done (i32.ge_u (local.get $rank) (local.get $end)))
        (local.set $dst (i32.add (local.get $run) (i32.mul (i32.load (local.get $rank)) (i32.const 48))))
        (v128.store offset=0 (local.get $dst) (v128.load offset=0 (local.get $src)))
        (v128.store offset=16 (local.get $dst) (v128.load offset=16 (local.get $src)))
        (v128.store offset=32 (local.get $dst) (v128.load offset=32 (local.get $src)))
        (local.set $src (i32.add (local.get $src) (i32.const 48)))
        (local.set $rank (i32.add (local.get $rank) (i32.const 4)))
        (br $records_loop))))

  ;; Sorts the run of n depth keys starting at index `begin` of `keys`, stably, and writes each record's rank
  ;; (its position in depth order) to rank[i - begin]; `k0`, `i0` (n i32 each) and `count` (2 n + 2 i32) are
  ;; scratch. As rasterize.ts bucketSortRun: one counting pass into one or two buckets per record by the keys'
  ;; top bits, then an insertion sort. Returns 0, having ranked nothing, when the buckets are too uneven for the
  ;; insertion sort (sum of squared bucket sizes above 8 n); the caller then sorts the run another way.
  (func (export "sort_run")
    (param $keys i32) (param $begin i32) (param $n i32) (param $k0 i32) (param $i0 i32) (param $count i32) (param $rank i32)
    (result i32)
    (local $p i32) (local $end i32) (local $k i32) (local $min i32) (local $max i32) (local $shift i32) (local $nb i32)
    (local $b i32) (local $c i32) (local $sum i32) (local $squares i64) (local $d i32) (local $i i32) (local $j i32)
    (local $o i32)
    (if (i32.lt_s (local.get $n) (i32.const 2))
      (then
        (if (i32.eq (local.get $n) (i32.const 1)) (then (i32.store (local.get $rank) (i32.const 0))))
        (return (i32.const 1))))
    (local.set $p (i32.add (local.get $keys) (i32.shl (local.get $begin) (i32.const 2))))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    ;; keys are the bits of positive floats: non-negative
    (local.set $min (i32.const 0x7fffffff))
    (loop $range
      (local.set $k (i32.load (local.get $p)))
      (if (i32.lt_s (local.get $k) (local.get $min)) (then (local.set $min (local.get $k))))
      (if (i32.gt_s (local.get $k) (local.get $max)) (then (local.set $max (local.get $k))))
      (local.set $p (i32.add (local.get $p) (i32.const 4)))
      (br_if $range (i32.lt_u (local.get $p) (local.get $end))))
    ;; at most 2^(floor(log2 n) + 1) <= 2 n buckets, so clearing and summing them stays O(n)
    (local.set $shift (i32.sub
      (i32.sub (i32.const 32) (i32.clz (i32.sub (local.get $max) (local.get $min))))
      (i32.sub (i32.const 32) (i32.clz (local.get $n)))))
    (if (i32.lt_s (local.get $shift) (i32.const 0)) (then (local.set $shift (i32.const 0))))
    (local.set $nb (i32.add (i32.shr_u (i32.sub (local.get $max) (local.get $min)) (local.get $shift)) (i32.const 1)))
    (memory.fill (local.get $count) (i32.const 0) (i32.shl (i32.add (local.get $nb) (i32.const 1)) (i32.const 2)))
    (local.set $p (i32.add (local.get $keys) (i32.shl (local.get $begin) (i32.const 2))))
    (loop $histogram
      (local.set $d (i32.add (local.get $count)
        (i32.shl (i32.shr_u (i32.sub (i32.load (local.get $p)) (local.get $min)) (local.get $shift)) (i32.const 2))))
      (i32.store offset=4 (local.get $d) (i32.add (i32.load offset=4 (local.get $d)) (i32.const 1)))
      (local.set $p (i32.add (local.get $p) (i32.const 4)))
      (br_if $histogram (i32.lt_u (local.get $p) (local.get $end))))
    ;; prefix sums (count[b] becomes the first slot of bucket b), and the sum of squared sizes
    (local.set $b (i32.const 1))
    (loop $prefix
      (local.set $d (i32.add (local.get $count) (i32.shl (local.get $b) (i32.const 2))))
      (local.set $c (i32.load (local.get $d)))
      (local.set $squares (i64.add (local.get $squares) (i64.mul (i64.extend_i32_s (local.get $c)) (i64.extend_i32_s (local.get $c)))))
      (local.set $sum (i32.add (local.get $sum) (local.get $c)))
      (i32.store (local.get $d) (local.get $sum))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br_if $prefix (i32.le_s (local.get $b) (local.get $nb))))
    (if (i64.gt_s (local.get $squares) (i64.mul (i64.extend_i32_s (local.get $n)) (i64.const 8))) (then (return (i32.const 0))))
    ;; distribute keys and record indices into their buckets, in run order
    (local.set $p (i32.add (local.get $keys) (i32.shl (local.get $begin) (i32.const 2))))
    (local.set $i (local.get $begin))
    (loop $distribute
      (local.set $k (i32.load (local.get $p)))
      (local.set $o (i32.add (local.get $count)
        (i32.shl (i32.shr_u (i32.sub (local.get $k) (local.get $min)) (local.get $shift)) (i32.const 2))))
      (local.set $d (i32.load (local.get $o)))
      (i32.store (local.get $o) (i32.add (local.get $d) (i32.const 1)))
      (i32.store (i32.add (local.get $k0) (i32.shl (local.get $d) (i32.const 2))) (local.get $k))
      (i32.store (i32.add (local.get $i0) (i32.shl (local.get $d) (i32.const 2))) (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (local.set $p (i32.add (local.get $p) (i32.const 4)))
      (br_if $distribute (i32.lt_u (local.get $p) (local.get $end))))
    ;; insertion sort; strict comparison, so equal keys keep their run order (stable)
    (local.set $i (i32.const 1))
    (loop $insert
      (local.set $k (i32.load (i32.add (local.get $k0) (i32.shl (local.get $i) (i32.const 2)))))
      (if (i32.gt_s (i32.load (i32.add (local.get $k0) (i32.shl (i32.sub (local.get $i) (i32.const 1)) (i32.const 2)))) (local.get $k))
        (then
          (local.set $o (i32.load (i32.add (local.get $i0) (i32.shl (local.get $i) (i32.const 2)))))
          (local.set $j (i32.sub (local.get $i) (i32.const 1)))
          (block $placed
            (loop $shift_up
              (i32.store offset=4 (i32.add (local.get $k0) (i32.shl (local.get $j) (i32.const 2)))
                (i32.load (i32.add (local.get $k0) (i32.shl (local.get $j) (i32.const 2)))))
              (i32.store offset=4 (i32.add (local.get $i0) (i32.shl (local.get $j) (i32.const 2)))
                (i32.load (i32.add (local.get $i0) (i32.shl (local.get $j) (i32.const 2)))))
              (local.set $j (i32.sub (local.get $j) (i32.const 1)))
              (br_if $placed (i32.lt_s (local.get $j) (i32.const 0)))
              (br_if $shift_up (i32.gt_s (i32.load (i32.add (local.get $k0) (i32.shl (local.get $j) (i32.const 2)))) (local.get $k)))))
          (i32.store offset=4 (i32.add (local.get $k0) (i32.shl (local.get $j) (i32.const 2))) (local.get $k))
          (i32.store offset=4 (i32.add (local.get $i0) (i32.shl (local.get $j) (i32.const 2))) (local.get $o))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $insert (i32.lt_s (local.get $i) (local.get $n))))
    ;; ranks for scatter_run
    (local.set $j (i32.const 0))
    (loop $ranks
      (i32.store
        (i32.add (local.get $rank) (i32.shl (i32.sub (i32.load (i32.add (local.get $i0) (i32.shl (local.get $j) (i32.const 2)))) (local.get $begin)) (i32.const 2)))
        (local.get $j))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $ranks (i32.lt_s (local.get $j) (local.get $n))))
    (i32.const 1))
)
