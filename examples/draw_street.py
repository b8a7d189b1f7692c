"""Draws keras_fcn/assets/street.jpg, the image `keras-fcn predict` segments when given no inputs.

A 480x360 RGB street scene in the style of the CamVid driving dataset (a
camera on a car looking down a city street), drawn procedurally with numpy
and PIL from a fixed seed; no dataset frame is used or read. The street is
ray cast in perspective (road, pavements and facades textured in world
coordinates, hazier with distance), then cars, trees, street lights, a road
sign and a pedestrian are painted far to near, and the picture is
downsampled, slightly blurred, dulled, grained and saved as JPEG.

    python examples/draw_street.py              # rewrites keras_fcn/assets/street.jpg
    python examples/draw_street.py street.jpg   # anywhere else
"""

import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 480, 360
SUPERSAMPLE = 2  # drawn at twice the size, then downsampled: smooth edges
SEED = 2015
FOCAL = 420.0  # pixels, at the output size: about 60 degrees across
HORIZON = 165.0  # the horizon's row, at the output size
CAMERA_HEIGHT = 1.3  # metres; the world has x right, y up, z ahead, the ground at y = 0
# The street across x, in metres: the camera drives in the left lane, as in Cambridge.
LEFT_FACADE, LEFT_KERB, CENTRE_LINE, RIGHT_KERB, RIGHT_FACADE = -7.0, -4.0, 1.75, 5.5, 8.5
STREET_END = 230.0  # metres ahead, where a building closes the street
END_BUILDING_HEIGHT = 16.0
HAZE = np.array([200.0, 206.0, 212.0])
HAZE_DISTANCE = 200.0  # metres over which the haze thickens by a factor e
JPEG_QUALITY = 90
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(REPOSITORY, "keras_fcn", "assets", "street.jpg")

BRICK, RENDER, STONE = range(3)
FACADE_COLOURS = {
    BRICK: [(124, 80, 66), (136, 96, 78), (112, 72, 62), (146, 110, 90)],
    RENDER: [(196, 190, 174), (206, 196, 170), (180, 184, 180), (196, 176, 150)],
    STONE: [(168, 160, 144), (150, 146, 138), (176, 170, 156)],
}
FASCIA_COLOURS = [(40, 60, 50), (30, 40, 70), (110, 30, 30), (60, 60, 62)]
SLATE = np.array([64.0, 66.0, 72.0])
CHIMNEY_WIDTH, CHIMNEY_HEIGHT = 1.0, 1.4  # a chimney stack on the party wall of each slate roof
TYRE = np.array([24.0, 24.0, 26.0])


def _smoothstep(low, high, x):
    """0 below `low`, 1 above `high`, a smooth S between (`low` may exceed `high`)."""
    t = np.clip((x - low) / (high - low), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _hash(a, b, c=0):
    """A pseudo-random number in [0, 1] per integer triple, in exact integer arithmetic so it is portable."""
    h = (np.asarray(a, np.int64) * 73856093) ^ (np.asarray(b, np.int64) * 19349663) ^ (np.int64(c) * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 1023) / 1023.0


def _periodic_noise(rng, size, slope):
    """A size x size noise texture of unit variance that wraps around, with a 1/f**slope spectrum."""
    frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.rfftfreq(size), indexing="ij"))
    phases = rng.standard_normal(frequency.shape) + 1j * rng.standard_normal(frequency.shape)
    spectrum = phases / np.maximum(frequency, 1.0 / size) ** slope
    spectrum[0, 0] = 0
    noise = np.fft.irfft2(spectrum, s=(size, size))
    return (noise / noise.std()).astype(np.float32)


def _sample(texture, u, v):
    """Bilinear lookup of a wrapping texture at texel coordinates u (across) and v (down)."""
    size = texture.shape[0]
    u0, v0 = np.floor(u), np.floor(v)
    fu, fv = u - u0, v - v0
    j0, i0 = u0.astype(np.int64) % size, v0.astype(np.int64) % size
    j1, i1 = (j0 + 1) % size, (i0 + 1) % size
    top = texture[i0, j0] * (1 - fu) + texture[i0, j1] * fu
    bottom = texture[i1, j0] * (1 - fu) + texture[i1, j1] * fu
    return top * (1 - fv) + bottom * fv


class Canvas:
    """The supersampled picture being painted, with its pinhole camera and noise textures."""

    def __init__(self, rng):
        self.height, self.width = HEIGHT * SUPERSAMPLE, WIDTH * SUPERSAMPLE
        self.focal = FOCAL * SUPERSAMPLE
        self.centre_x, self.horizon = self.width / 2, HORIZON * SUPERSAMPLE
        self.rows, self.columns = np.mgrid[0 : self.height, 0 : self.width] + 0.5
        self.rgb = np.zeros((self.height, self.width, 3))
        self.rough = _periodic_noise(rng, 512, 1.0)  # clouds, stains, foliage
        self.fine = _periodic_noise(rng, 512, 0.4)  # asphalt grit, paint wear
        self.grain = rng.standard_normal((self.height, self.width))

    def project(self, x, y, z):
        """The pixel (column, row) that the world point (x, y, z) is seen at."""
        return self.centre_x + self.focal * x / z, self.horizon - self.focal * (y - CAMERA_HEIGHT) / z

    def row(self, y, z):
        """The row that a point `y` metres up and `z` metres ahead is seen at."""
        return self.project(0.0, y, z)[1]

    def polygon(self, points):
        """The coverage in [0, 1] of a world polygon, a list of (x, y, z) points in front of the camera."""
        mask = Image.new("L", (self.width, self.height))
        ImageDraw.Draw(mask).polygon([self.project(*point) for point in points], fill=255)
        return np.asarray(mask, np.float64) / 255

    def rectangle(self, left, right, bottom, top, z):
        """The coverage of an upright rectangle facing the camera, `z` metres ahead."""
        return self.polygon([(left, bottom, z), (left, top, z), (right, top, z), (right, bottom, z)])

    def ellipse(self, centre, radii):
        """The coverage of an ellipse facing the camera: centre (x, y, z), radii (across, up) in metres."""
        x, y = self.project(*centre)
        rx, ry = (self.focal * radius / centre[2] for radius in radii)
        mask = Image.new("L", (self.width, self.height))
        ImageDraw.Draw(mask).ellipse([x - rx, y - ry, x + rx, y + ry], fill=255)
        return np.asarray(mask, np.float64) / 255

    def paint(self, coverage, colour, grain=0.04):
        """Paints `colour` (an RGB triple, or an image of them) where `coverage` says, with some grain."""
        colour = np.asarray(colour, np.float64) * (1 + grain * self.grain)[..., None]
        self.rgb += coverage[..., None] * (colour - self.rgb)

    def shadow(self, left, right, near, far, darkness, softness):
        """Darkens a rectangle of ground (metres across and ahead), blurred by `softness` output pixels."""
        mask = Image.new("L", (self.width, self.height))
        corners = [(left, near), (right, near), (right, far), (left, far)]
        ImageDraw.Draw(mask).polygon([self.project(x, 0.0, z) for x, z in corners], fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(softness * SUPERSAMPLE))
        self.rgb *= 1 - darkness * (np.asarray(mask, np.float64) / 255)[..., None]

    def across(self, x, z, radius):
        """Each column's position across an upright cylinder of `radius` metres at (x, z): -1 to 1 inside it."""
        return (self.columns - self.project(x, 0.0, z)[0]) / max(self.focal * radius / z, 0.5)

    def detail(self, size, distance):
        """How visible (0 to 1) a pattern of `size` metres is from `distance`: it fades out below about 2 pixels."""
        return np.clip(size * self.focal / np.maximum(distance, 1e-3) / 2 - 0.5, 0.0, 1.0)


def _facades(rng):
    """The terraces along both sides, from behind the camera to the street's end: a dict of arrays, one per building."""
    rows = []
    for side in (0, 1):
        start = -5.0
        while start < STREET_END:
            style = int(rng.choice([BRICK, BRICK, RENDER, STONE]))
            width = rng.uniform(8, 20)
            floor_height = rng.uniform(3.0, 3.6)
            floors = int(rng.integers(3, 6))
            spacing = rng.uniform(2.4, 3.6)
            columns = max(1, int((width - 1.0) // spacing))
            palette = FACADE_COLOURS[style]
            rows.append(
                dict(
                    side=side,
                    start=start,
                    width=width,
                    height=floors * floor_height + rng.uniform(0.6, 1.5),
                    roof=rng.uniform(1.0, 1.8) if style == BRICK else 0.0,
                    style=style,
                    colour=np.array(palette[rng.integers(len(palette))]) * rng.uniform(0.9, 1.08),
                    floor_height=floor_height,
                    spacing=spacing,
                    columns=columns,
                    margin=(width - columns * spacing) / 2,
                    window_width=rng.uniform(0.9, 1.5),
                    window_height=rng.uniform(1.3, 1.9),
                    shop=rng.random() < 0.6,
                    fascia=np.array(FASCIA_COLOURS[rng.integers(len(FASCIA_COLOURS))], np.float64),
                )
            )
            start += width
    return {key: np.array([row[key] for row in rows]) for key in rows[0]}


def _sky(canvas):
    """A blue-grey gradient, paler towards the horizon, with soft clouds."""
    up = np.clip(1 - canvas.rows / canvas.horizon, 0, 1)[..., None]
    gradient = np.array([212.0, 218.0, 224.0]) * (1 - up) + np.array([128.0, 152.0, 188.0]) * up
    u, v = canvas.columns / 9.0, canvas.rows / 3.5 + 40
    cover = _smoothstep(-0.3, 1.2, _sample(canvas.rough, u, v))[..., None]
    underside = 1 - 0.18 * _smoothstep(0.0, 1.5, _sample(canvas.rough, u, v + 3))
    canvas.rgb[:] = gradient * (1 - cover) + np.array([236.0, 237.0, 238.0]) * underside[..., None] * cover


def _facade_colours(canvas, facades, index, u, v, distance):
    """The colours of facade points: of building `index`, `u` metres along its front, `v` up, `distance` ahead."""
    building = {key: values[index] for key, values in facades.items()}
    colour = building["colour"] * (1 + 0.07 * _sample(canvas.rough, u * 3 + index * 50, v * 3))[..., None]
    style = building["style"]
    # Bricks of 215 x 65 mm with 10 mm of lighter mortar, every other course offset.
    course = np.floor(v / 0.075)
    u_bond = u + 0.11 * (course % 2)
    mortar = ((v % 0.075) < 0.012) | ((u_bond % 0.225) < 0.012)
    brick_shade = np.where(mortar, 1.25, 1 + 0.16 * (_hash(course, np.floor(u_bond / 0.225), index) - 0.5))
    colour *= np.where(style == BRICK, 1 + (brick_shade - 1) * canvas.detail(0.075, distance), 1.0)[..., None]
    # Stone blocks of 600 x 300 mm; render streaked by rain and grimy at the bottom.
    joint = ((v % 0.3) < 0.015) | ((u + 0.3 * (np.floor(v / 0.3) % 2)) % 0.6 < 0.015)
    colour *= np.where((style == STONE) & joint, 1 - 0.15 * canvas.detail(0.3, distance), 1.0)[..., None]
    streaks = np.clip(_sample(canvas.fine, u * 6, v * 0.4), -2, 2)
    colour *= np.where(style == RENDER, 1 - 0.05 * streaks - 0.08 * _smoothstep(2.0, 0.0, v), 1.0)[..., None]
    # A cornice at the top, a dark footing, a dark joint between buildings.
    from_top = building["height"] - v
    colour *= np.where(from_top < 0.35, 1.18, np.where(from_top < 0.5, 0.7, 1.0))[..., None]
    colour *= (1 - 0.35 * np.exp(-v / 0.5))[..., None]
    colour *= np.where((u < 0.15) | (building["width"] - u < 0.1), 0.72, 1.0)[..., None]
    # Above the cornice, a slate roof on some, with a brick chimney stack on the party wall.
    roof = (from_top < 0)[..., None]
    chimney = roof & (u < CHIMNEY_WIDTH)[..., None]
    slate_shade = (1 + 0.06 * _sample(canvas.rough, u * 4, v * 8)) * (1 + 0.25 * _smoothstep(0, 1.5, -from_top))
    slate = SLATE * slate_shade[..., None]
    colour = np.where(chimney, building["colour"] * 0.85, np.where(roof, slate, colour))
    # Windows on the upper floors: framed glass, paler at the top where it reflects the sky, under a lintel's shadow.
    floor = np.floor(v / building["floor_height"])
    up = v - floor * building["floor_height"]
    along = u - building["margin"]
    column = np.floor(along / building["spacing"])
    window_width, window_height = building["window_width"], building["window_height"]
    across = along - column * building["spacing"] - (building["spacing"] - window_width) / 2
    in_grid = (column >= 0) & (column < building["columns"]) & (floor >= 1) & (from_top > 0.9)
    frame = in_grid & (across > -0.08) & (across < window_width + 0.08) & (up > 0.82) & (up < 0.98 + window_height)
    glass = in_grid & (across > 0) & (across < window_width) & (up > 0.9) & (up < 0.9 + window_height)
    glass_colour = np.array([52.0, 58.0, 66.0]) * (0.8 + 0.5 * _hash(column, floor, index + 7))[..., None]
    glass_colour *= (1 + 0.6 * _smoothstep(0.9, 0.9 + window_height, up))[..., None]
    glass_colour *= np.where(up > 0.72 + window_height, 0.6, 1.0)[..., None]
    colour = np.where(frame[..., None], np.array([205.0, 203.0, 196.0]), colour)
    colour = np.where(glass[..., None], glass_colour, colour)
    # Shop fronts on some ground floors: a painted fascia over wide dark windows and doors.
    shop = building["shop"] & (floor == 0) & (u > 0.4) & (building["width"] - u > 0.4)
    fascia = shop & (up > 2.75) & (up < 3.2)
    door = (u % 6.0 > 2.0) & (u % 6.0 < 3.1) & (up > 2.3)
    window = shop & (up > 0.45) & (up < 2.6) & ~door
    reflection = _smoothstep(0.5, 2.6, up) * _hash(np.floor(u / 6), index)
    colour = np.where(fascia[..., None], building["fascia"], colour)
    return np.where(window[..., None], np.array([38.0, 42.0, 46.0]) * (1 + 0.9 * reflection)[..., None], colour)


def _ground_colours(canvas, x, z):
    """The colours of ground points `x` metres across and `z` metres ahead."""
    grit = _sample(canvas.fine, x * 40, z * 40) * canvas.detail(0.05, z)
    patches = _sample(canvas.rough, x * 2, z * 0.5 + 100)
    # Asphalt, darker where tyres run and oil drips, patched here and there, with a gutter along each kerb.
    asphalt = np.array([96.0, 97.0, 100.0]) * (1 + 0.06 * grit + 0.05 * patches)[..., None]
    for lane_centre in ((LEFT_KERB + CENTRE_LINE) / 2 + 0.6, (CENTRE_LINE + RIGHT_KERB) / 2):
        for track in (-0.8, 0.8):
            asphalt *= (1 - 0.07 * _smoothstep(0.5, 0.1, np.abs(x - lane_centre - track)))[..., None]
        drips = _smoothstep(-0.5, 1.5, _sample(canvas.rough, x * 3, z * 0.7))
        asphalt *= (1 - 0.12 * drips * _smoothstep(0.5, 0.0, np.abs(x - lane_centre)))[..., None]
    cell_x, cell_z = np.floor(x / 2.2), np.floor(z / 5.0)
    repaired = (_hash(cell_x, cell_z, 11) < 0.12) & ((x % 2.2) > 0.3) & ((z % 5.0) > 0.8)
    asphalt *= np.where(repaired, 0.86 + 0.1 * _hash(cell_x, cell_z, 12), 1.0)[..., None]
    gutter = np.minimum(np.abs(x - LEFT_KERB), np.abs(x - RIGHT_KERB))
    asphalt *= (1 - 0.18 * _smoothstep(0.5, 0.0, gutter))[..., None]
    # Worn white paint: a dashed centre line and an edge line along each kerb.
    dash = (np.abs(x - CENTRE_LINE) < 0.07) & ((z % 9.0) < 3.0)
    edge = (np.abs(x - (RIGHT_KERB - 0.45)) < 0.05) | (np.abs(x - (LEFT_KERB + 0.45)) < 0.05)
    wear = _smoothstep(-1.5, 0.5, _sample(canvas.fine, x * 20, z * 5))
    paint = np.array([210.0, 210.0, 204.0]) * (0.75 + 0.25 * wear)[..., None]
    marked = ((dash | edge) * wear)[..., None]
    asphalt = asphalt * (1 - marked) + paint * marked
    # Pavements of square slabs, of varied tone, with dark joints; a pale kerb with a shadowed face.
    slab_x, slab_z = np.floor(x / 0.6), np.floor(z / 0.6)
    tone = 1 + 0.1 * (_hash(slab_x, slab_z, 3) - 0.5) + 0.05 * patches + 0.05 * grit
    joint = ((x % 0.6) < 0.025) | ((z % 0.6) < 0.025)
    tone *= np.where(joint, 1 - 0.25 * canvas.detail(0.6, z), 1.0)
    pavement = np.array([150.0, 146.0, 140.0]) * tone[..., None]
    kerb = (np.abs(x - LEFT_KERB + 0.14) < 0.14) | (np.abs(x - RIGHT_KERB - 0.14) < 0.14)
    kerb_face = (np.abs(x - LEFT_KERB) < 0.05) | (np.abs(x - RIGHT_KERB) < 0.05)
    pavement = np.where(kerb[..., None], np.array([172.0, 170.0, 165.0]) * (1 + 0.04 * grit)[..., None], pavement)
    pavement = np.where(kerb_face[..., None], np.array([70.0, 70.0, 72.0]), pavement)
    return np.where(((x > LEFT_KERB) & (x < RIGHT_KERB))[..., None], asphalt, pavement)


def _street(canvas, facades):
    """Ray casts the road, pavements and facades over the sky, hazier with distance."""
    dx = (canvas.columns - canvas.centre_x) / canvas.focal
    dy = (canvas.horizon - canvas.rows) / canvas.focal
    with np.errstate(divide="ignore"):
        ground = dy < 0
        distance = np.where(ground, CAMERA_HEIGHT / -dy, np.inf)
        facade_index = np.full(dx.shape, -1)
        for side, plane in enumerate((LEFT_FACADE, RIGHT_FACADE)):
            mine = np.flatnonzero(facades["side"] == side)
            starts = facades["start"][mine]
            hit = np.where(dx * plane > 0, plane / dx, np.inf)
            which = mine[np.clip(np.searchsorted(starts, hit, side="right") - 1, 0, len(mine) - 1)]
            chimney = (facades["roof"][which] > 0) & (hit - facades["start"][which] < CHIMNEY_WIDTH)
            top = facades["height"][which] + facades["roof"][which] + np.where(chimney, CHIMNEY_HEIGHT, 0.0)
            up = CAMERA_HEIGHT + dy * hit
            seen = (hit < STREET_END) & (up >= 0) & (up <= top) & (hit < distance)
            distance = np.where(seen, hit, distance)
            facade_index = np.where(seen, which, facade_index)
    end_x, end_y = dx * STREET_END, CAMERA_HEIGHT + dy * STREET_END
    end = (end_x > LEFT_FACADE) & (end_x < RIGHT_FACADE) & (end_y >= 0) & (end_y < END_BUILDING_HEIGHT)
    end &= distance > STREET_END
    distance = np.where(end, STREET_END, distance)

    on_ground = ground & (facade_index < 0) & ~end
    canvas.rgb[on_ground] = _ground_colours(canvas, (dx * distance)[on_ground], distance[on_ground])
    on_facade = facade_index >= 0
    index, wall_z = facade_index[on_facade], distance[on_facade]
    wall_y = CAMERA_HEIGHT + dy[on_facade] * wall_z
    colours = _facade_colours(canvas, facades, index, wall_z - facades["start"][index], wall_y, wall_z)
    # Sunlight falls on the right-hand terrace; the left one is in bluish shade.
    in_shade = (facades["side"][index] == 0)[..., None]
    canvas.rgb[on_facade] = colours * np.where(in_shade, np.array([0.71, 0.73, 0.77]), np.array([1.01, 0.98, 0.94]))
    end_stains = _sample(canvas.rough, canvas.columns[end] / 2, canvas.rows[end] / 2)
    canvas.rgb[end] = np.array([150.0, 148.0, 142.0]) * (1 + 0.1 * end_stains)[..., None]
    haze = np.where(np.isfinite(distance), 1 - np.exp(-distance / HAZE_DISTANCE), 0.0)[..., None]
    canvas.rgb[:] = canvas.rgb * (1 - haze) + HAZE * haze


def _car(canvas, centre, near, colour, facing=False):
    """A hatchback on the road, centred `centre` metres across, its nearest end `near` metres ahead.

    It drives away from the camera, or towards it if `facing`; we see its
    back (or front), its top, and the side that faces the camera, if any.
    """
    colour = np.asarray(colour, np.float64)
    left, right, far = centre - 0.9, centre + 0.9, near + 4.2
    canvas.shadow(left - 0.25, right + 0.25, near - 0.3, far + 0.2, 0.6, 3)
    canvas.paint(canvas.rectangle(left + 0.1, right - 0.1, 0.0, 0.35, near + 0.4), TYRE)
    side = right if right < 0 else left if left > 0 else None
    if side is not None:
        inward = 0.14 if side == left else -0.14
        highlight = 1 - np.abs(canvas.rows - canvas.row(0.8, near + 2)) / 6
        body = colour * (0.5 + 0.36 * _smoothstep(0.2, 0.9, highlight))[..., None]
        flank = [(side, 0.28, near), (side, 0.98, near + 0.05), (side, 0.98, far - 0.05), (side, 0.28, far)]
        canvas.paint(canvas.polygon(flank), body)
        hub, nut = np.array([120.0, 122.0, 126.0]), np.array([60.0, 60.0, 62.0])
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        for axle in (near + 0.85, far - 0.85):
            for radius, shade in ((0.33, TYRE), (0.19, hub), (0.08, nut)):
                rim = [(side - 0.1 * inward, 0.33 + radius * np.sin(a), axle + radius * np.cos(a)) for a in angles]
                canvas.paint(canvas.polygon(rim), shade)
        pillar = side + inward
        canvas.paint(canvas.polygon([(pillar, 0.97, near + 1.05), (pillar, 1.44, near + 1.55),
                                     (pillar, 1.44, far - 1.1), (pillar, 0.97, far - 0.55)]), colour * 0.6)
        sky_reflection = _smoothstep(canvas.row(0.97, near + 2), canvas.row(1.44, near + 2), canvas.rows)
        glass = np.array([48.0, 54.0, 62.0]) * (1 + 0.5 * sky_reflection)[..., None]
        canvas.paint(canvas.polygon([(pillar, 1.01, near + 1.2), (pillar, 1.4, near + 1.6),
                                     (pillar, 1.4, far - 1.2), (pillar, 1.01, far - 0.7)]), glass)
    # The top of the body (bonnet or boot), then the cabin's near window, then the near end.
    canvas.paint(canvas.polygon([(left + 0.02, 0.98, near + 0.05), (right - 0.02, 0.98, near + 0.05),
                                 (right - 0.04, 0.98, far), (left + 0.04, 0.98, far)]), colour * 1.1)
    canvas.paint(canvas.polygon([(left + 0.12, 0.98, near + 1.0), (right - 0.12, 0.98, near + 1.0),
                                 (right - 0.22, 1.45, near + 1.55), (left + 0.22, 1.45, near + 1.55)]), colour * 0.8)
    sky_reflection = _smoothstep(canvas.row(1.0, near + 1.05), canvas.row(1.42, near + 1.55), canvas.rows)
    glass = np.array([40.0, 46.0, 54.0]) * (1 + 0.7 * sky_reflection)[..., None]
    canvas.paint(canvas.polygon([(left + 0.2, 1.01, near + 1.04), (right - 0.2, 1.01, near + 1.04),
                                 (right - 0.3, 1.41, near + 1.5), (left + 0.3, 1.41, near + 1.5)]), glass)
    shade = 0.92 - 0.25 * _smoothstep(canvas.row(0.98, near), canvas.row(0.28, near), canvas.rows)
    canvas.paint(canvas.rectangle(left, right, 0.28, 0.96, near), colour * shade[..., None])
    canvas.paint(canvas.rectangle(left, right, 0.26, 0.42, near - 0.02), colour * 0.45)  # bumper
    if facing:
        lamp, plate = np.array([225.0, 225.0, 215.0]), np.array([228.0, 228.0, 222.0])
        canvas.paint(canvas.rectangle(centre - 0.42, centre + 0.42, 0.5, 0.68, near), TYRE * 1.4)  # grille
    else:
        lamp, plate = np.array([170.0, 28.0, 30.0]), np.array([222.0, 190.0, 40.0])
    canvas.paint(canvas.rectangle(left + 0.05, left + 0.35, 0.7, 0.86, near - 0.03), lamp)
    canvas.paint(canvas.rectangle(right - 0.35, right - 0.05, 0.7, 0.86, near - 0.03), lamp)
    canvas.paint(canvas.rectangle(centre - 0.26, centre + 0.26, 0.44, 0.55, near - 0.04), plate)


def _tree(canvas, x, z, height, radius):
    """A street tree on the pavement: a trunk under a lumpy canopy of leaf clumps, with sky showing through its edge."""
    canvas.shadow(x - radius, x + radius, z - radius * 0.6, z + radius * 0.6, 0.3, 8)
    bark = np.array([78.0, 68.0, 58.0]) * (1.1 - 0.35 * canvas.across(x, z, 0.14) ** 2)[..., None]
    bark *= (1 + 0.12 * _sample(canvas.fine, canvas.columns * 0.3, canvas.rows * 0.05))[..., None]
    fork = height - radius
    trunk = canvas.polygon([(x - 0.16, 0.0, z), (x - 0.11, fork, z), (x + 0.11, fork, z), (x + 0.16, 0.0, z)])
    canvas.paint(trunk, bark, grain=0.08)
    centre_x, centre_y = canvas.project(x, height - radius, z)
    pixels = canvas.focal * radius / z
    across, up = (canvas.columns - centre_x) / pixels, (canvas.rows - centre_y) / (pixels * 1.1)
    lumps = _sample(canvas.rough, across * 20 + x * 37, up * 20 + z * 11)
    clumps = _sample(canvas.rough, across * 60 + 200, up * 60)
    reach = np.hypot(across, up) - 0.22 * lumps
    gaps = np.clip(2 * clumps + 4.0 - 4.0 * _smoothstep(0.6, 1.0, reach), 0, 1)  # between clumps, near the edge
    leaves = np.clip((1 - reach) * pixels / 2.5, 0, 1) * gaps
    light = np.clip(0.95 - 0.35 * up - 0.15 * across + 0.28 * np.tanh(clumps), 0.35, 1.5)
    green = np.array([72.0, 98.0, 46.0]) * ((1 + 0.08 * lumps) * light)[..., None]
    canvas.paint(leaves, green, grain=0.1)


def _street_light(canvas, x, z, height, reach):
    """A street light: a tapered grey pole with an arm reaching `reach` metres across (negative: to the left)."""
    metal = np.array([110.0, 113.0, 118.0]) * (1.15 - 0.45 * (canvas.across(x, z, 0.09) + 0.3) ** 2)[..., None]
    pole = canvas.polygon([(x - 0.1, 0.0, z), (x - 0.06, height, z), (x + 0.06, height, z), (x + 0.1, 0.0, z)])
    canvas.paint(pole, metal)
    canvas.paint(canvas.rectangle(x - 0.14, x + 0.14, 0.0, 0.6, z), metal * 0.85)
    end = x + reach
    arm = [(x, height - 0.35, z), (end, height - 0.05, z), (end, height + 0.05, z), (x, height - 0.22, z)]
    canvas.paint(canvas.polygon(arm), np.array([100.0, 103.0, 108.0]))
    lantern = canvas.polygon([(end - 0.35, height - 0.12, z), (end + 0.25, height - 0.12, z),
                              (end + 0.2, height + 0.08, z), (end - 0.3, height + 0.08, z)])
    canvas.paint(lantern, np.array([70.0, 72.0, 76.0]))
    lens = canvas.rectangle(end - 0.3, end + 0.2, height - 0.18, height - 0.12, z)
    canvas.paint(lens, np.array([215.0, 212.0, 196.0]))


def _warning_sign(canvas, x, z):
    """A triangular warning sign (red border, white field, black '!') on a thin pole."""
    canvas.paint(canvas.rectangle(x - 0.04, x + 0.04, 0.0, 2.3, z), np.array([120.0, 122.0, 126.0]))
    bottom, side = 2.2, 0.8
    for scale, colour in ((1.0, (185.0, 32.0, 36.0)), (0.68, (232.0, 230.0, 222.0))):
        half, rise = side * scale / 2, side * scale * np.sqrt(0.75)
        base = bottom + (side * np.sqrt(0.75) - rise) / 3  # the same centroid
        canvas.paint(canvas.polygon([(x - half, base, z), (x + half, base, z), (x, base + rise, z)]), colour)
    ink = np.array([25.0, 25.0, 25.0])
    canvas.paint(canvas.rectangle(x - 0.03, x + 0.03, bottom + 0.2, bottom + 0.42, z), ink)
    canvas.paint(canvas.rectangle(x - 0.03, x + 0.03, bottom + 0.11, bottom + 0.16, z), ink)


def _pedestrian(canvas, x, z):
    """A person walking on the pavement: legs mid-stride, a coat, arms, a head with dark hair."""
    canvas.shadow(x - 0.35, x + 0.35, z - 0.2, z + 0.3, 0.35, 2)
    jeans, coat = np.array([48.0, 54.0, 72.0]), np.array([58.0, 44.0, 46.0])
    skin, hair = np.array([196.0, 156.0, 130.0]), np.array([46.0, 34.0, 28.0])
    for shade, ankle, hip in ((0.8, (-0.2, -0.07), (-0.02, 0.1)), (1.0, (0.05, 0.18), (-0.06, 0.12))):
        leg = [(x + ankle[0], 0.0, z), (x + hip[0], 0.85, z), (x + hip[1], 0.85, z), (x + ankle[1], 0.0, z)]
        canvas.paint(canvas.polygon(leg), jeans * shade)
    torso = [(x - 0.2, 0.78, z), (x - 0.22, 1.42, z), (x + 0.22, 1.42, z), (x + 0.2, 0.78, z)]
    canvas.paint(canvas.polygon(torso), coat)
    for side in (-1, 1):
        shoulder, hand = x + side * 0.22, x + side * 0.3
        arm = [(shoulder, 1.42, z), (hand, 0.89, z), (shoulder, 0.87, z), (x + side * 0.16, 1.3, z)]
        canvas.paint(canvas.polygon(arm), coat * 0.8)
    canvas.paint(canvas.rectangle(x - 0.05, x + 0.05, 1.4, 1.5, z), skin * 0.85)
    canvas.paint(canvas.ellipse((x, 1.6, z), (0.1, 0.12)), skin)
    canvas.paint(canvas.ellipse((x, 1.66, z), (0.105, 0.08)), hair)


def _camera_response(rgb, rng):
    """What a car's video camera makes of the scene: duller colours, a soft S curve, vignetting and sensor noise."""
    grey = rgb.mean(-1, keepdims=True)
    rgb = grey + 0.82 * (rgb - grey)
    rgb = 265 * _smoothstep(-60.0, 300.0, rgb) - 12
    rows, columns = np.mgrid[0:HEIGHT, 0:WIDTH]
    radius = np.hypot(columns - WIDTH / 2, rows - HEIGHT / 2) / WIDTH
    rgb *= (1 - 0.35 * radius**2)[..., None] * np.array([1.0, 1.0, 0.97])
    rgb += rng.normal(0, 2.5, (HEIGHT, WIDTH, 1)) + rng.normal(0, 1.2, (HEIGHT, WIDTH, 3))
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def draw(path):
    """Draws the street scene and writes it to `path` as JPEG.

    Returns:
        The picture before JPEG compression, a (360, 480, 3) uint8 array.
    """
    rng = np.random.default_rng(SEED)
    canvas = Canvas(rng)
    facades = _facades(rng)
    _sky(canvas)
    _street(canvas, facades)
    # Far to near, each over what is behind it.
    _street_light(canvas, 6.0, 42.0, 8.0, -1.6)
    _car(canvas, 3.6, 30.0, (40, 56, 96), facing=True)
    _tree(canvas, 7.3, 24.0, 7.0, 2.6)
    _pedestrian(canvas, 6.8, 19.0)
    _car(canvas, 0.3, 17.0, (150, 32, 30))
    _tree(canvas, -5.8, 15.0, 7.5, 2.8)
    _warning_sign(canvas, 6.2, 13.0)
    _street_light(canvas, -4.4, 10.5, 8.0, 1.6)
    _car(canvas, -3.0, 8.5, (200, 200, 198))
    picture = Image.fromarray(np.clip(canvas.rgb, 0, 255).astype(np.uint8))
    picture = picture.resize((WIDTH, HEIGHT), Image.LANCZOS).filter(ImageFilter.GaussianBlur(0.6))
    picture = Image.fromarray(_camera_response(np.asarray(picture, np.float64), rng))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    picture.save(path, quality=JPEG_QUALITY)
    return np.asarray(picture)


if __name__ == "__main__":
    draw(sys.argv[1] if len(sys.argv) > 1 else OUTPUT)
