# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error weft's cores raise."""

from __future__ import annotations


class WeftError(Exception):
    """Bad input, or a change the host refused; the message starts with what it is about
    (an option, a variable, a step). `result` holds what was done before it happened."""

    def __init__(self, msg, **result):
        super().__init__(msg)
        self.result = result
