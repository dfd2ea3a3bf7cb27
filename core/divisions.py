"""Administrative divisions (GB/T 2260) of the codes the gateway meets most:
the Shenzhen–Dongguan–Huizhou circle and the "+2" cities (Shanwei, Heyuan).
Positions 3-8 of a USCC are its registration's division."""

from __future__ import annotations

NAMES = {
    "441300": "惠州市", "441302": "惠州市惠城区", "441303": "惠州市惠阳区",
    "441322": "博罗县", "441323": "惠东县", "441324": "龙门县",
    "441321": "惠阳县", "441381": "惠阳市",  # historical codes, still in older USCCs
    "440300": "深圳市", "440303": "深圳市罗湖区", "440304": "深圳市福田区",
    "440305": "深圳市南山区", "440306": "深圳市宝安区", "440307": "深圳市龙岗区",
    "440308": "深圳市盐田区", "440309": "深圳市龙华区", "440310": "深圳市坪山区",
    "440311": "深圳市光明区",
    "441900": "东莞市", "441500": "汕尾市", "441600": "河源市",
}


def division_name(code: str) -> str | None:
    """The name of division ``code`` (6 digits); ``None`` when not in the table."""
    return NAMES.get(code)
