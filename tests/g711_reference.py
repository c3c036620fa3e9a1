"""Reference code/value pairs from ITU-T G.711, for the codec tests of the client and the emulator.

Decoder output values from the standard's Table 1 (A-law, in 13-bit units: x8 for PCM16) and Table 2
(mu-law, in 14-bit units: x4), keyed by the transmitted character (A-law: even bits inverted, that
is XOR 0x55; mu-law: all bits inverted). First and last steps of segments, both signs, full scale.
"""

_ALAW = [  # (character, output value in 13-bit units)
    (0xD5, 1), (0x55, -1),  # segment 1, first step (A-law has no zero level)
    (0xD4, 3),  # segment 1, second step
    (0xC5, 33),  # segment 2, first step
    (0xF5, 66),  # segment 3, first step
    (0x85, 528),  # segment 6, first step
    (0xAA, 4032), (0x2A, -4032),  # segment 8, last step: full scale
]
_ULAW = [  # (character, output value in 14-bit units)
    (0xFF, 0), (0x7F, 0),  # +0 and -0
    (0xFE, 2), (0x7E, -2),  # segment 1, second step
    (0xF0, 30),  # segment 1, last step
    (0xEF, 33),  # segment 2, first step
    (0xDF, 99),  # segment 3, first step
    (0x8F, 4191),  # segment 8, first step
    (0x80, 8031), (0x00, -8031),  # segment 8, last step: full scale
]

#: format -> [(code, PCM16 sample)]
G711_REFERENCE = {
    "g711_alaw": [(code, value * 8) for code, value in _ALAW],
    "g711_ulaw": [(code, value * 4) for code, value in _ULAW],
}

#: -0 decodes to 0, and G.711 encodes 0 as +0 (0xFF)
NOT_ENCODED = {0x7F}

#: what PCM16 32767 and -32768 encode to
G711_FULL_SCALE = {"g711_alaw": bytes([0xAA, 0x2A]), "g711_ulaw": bytes([0x80, 0x00])}
