#!/usr/bin/env python3
"""Regenerate calendars/cn_mainland.yaml and its day-by-day fixture.

Sources (PyPI, install into a throw-away venv):
    pip install chinesecalendar==1.11.0 holidays==0.109
    python calendars/tools/gen_cn_mainland.py

- The YAML (holiday ranges with names, make-up working days) is built from `chinesecalendar`.
- The fixture (calendars/fixtures/cn_mainland_days.txt, one line per date) is built from the
  independent `holidays` package, so the Rust test compares two sources day by day.
- Both are checked against each other here; the only disagreement in 2004-2026 is 2005-12-31,
  a Saturday made a working day by 国办发明电〔2005〕35号 (the 2006 arrangement). `chinesecalendar`
  misses it; the official notice wins, so it is added below as a correction.
"""
import datetime as dt
import os
import sys

import chinese_calendar as cc
import holidays

FIRST, LAST = 2004, 2026
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "Mid-autumn Festival": "中秋节",
    "National Day": "国庆节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}

# The yearly arrangement notice of the State Council General Office, by the year it arranges.
NOTICES = {
    2004: "国办发明电〔2003〕53号",
    2005: "国办发明电〔2004〕52号",
    2006: "国办发明电〔2005〕35号",
    2007: "国办发明电〔2006〕49号",
    2008: "国办发明电〔2007〕52号",
    2009: "国办发明电〔2008〕42号",
    2010: "国办发明电〔2009〕27号",
    2011: "国办发明电〔2010〕40号",
    2012: "国办发明电〔2011〕45号",
    2013: "国办发明电〔2012〕33号",
    2014: "国办发明电〔2013〕28号",
    2015: "国办发明电〔2014〕28号",
    2016: "国办发明电〔2015〕18号",
    2017: "国办发明电〔2016〕17号",
    2018: "国办发明电〔2017〕12号",
    2019: "国办发明电〔2018〕15号",
    2020: "国办发明电〔2019〕16号",
    2021: "国办发明电〔2020〕27号",
    2022: "国办发明电〔2021〕11号",
    2023: "国办发明电〔2022〕16号",
    2024: "国办发明电〔2023〕7号",
    2025: "国办发明电〔2024〕12号",
    2026: "国办发明电〔2025〕7号",
}

# Later notices that changed an arrangement, by (year, festival).
AMENDMENTS = {
    (2015, "抗战胜利70周年纪念日"): "国发明电〔2015〕1号",
    (2019, "劳动节"): "国办发明电〔2019〕3号",
    (2020, "春节"): "国办发明电〔2020〕1号（春节假期延长至2月2日）",
}

# Amendments that changed only the holiday range, not the make-up days.
RANGE_ONLY_AMENDMENTS = {(2020, "春节")}

# Corrections where the official notice disagrees with `chinesecalendar`.
CORRECTIONS_WORKDAYS = {dt.date(2005, 12, 31): "New Year's Day"}
# 国发明电〔2015〕1号: "9月3日至5日调休放假，共3天" - Saturday 09-05 is part of the holiday
# (a rest day either way; this only gives it the holiday's name).
CORRECTIONS_HOLIDAYS = {dt.date(2015, 9, 5): "Anti-Fascist 70th Day"}


def arranging_year(day, festival):
    """The year whose notice arranged `day`: New Year days in December belong to the next one."""
    if day.month == 12 and festival == "元旦":
        return day.year + 1
    return day.year


def notice_for(day, festival, is_range):
    year = arranging_year(day, festival)
    base = NOTICES.get(year, "")
    amendment = AMENDMENTS.get((year, festival))
    if not is_range and (year, festival) in RANGE_ONLY_AMENDMENTS:
        amendment = None
    return f"{base}；{amendment}" if amendment else base


def main():
    first, last = dt.date(FIRST, 1, 1), dt.date(LAST, 12, 31)
    holiday_days = {d: NAMES[n] for d, n in cc.holidays.items() if first <= d <= last}
    workdays = {d: NAMES[n] for d, n in cc.workdays.items() if first <= d <= last}
    for d, n in CORRECTIONS_WORKDAYS.items():
        workdays[d] = NAMES[n]
    for d, n in CORRECTIONS_HOLIDAYS.items():
        holiday_days[d] = NAMES[n]

    # Cross-check with the independent `holidays` package, day by day.
    other = holidays.China(years=range(FIRST - 1, LAST + 2), language="zh_CN")
    problems = []
    d = first
    while d <= last:
        mine = (d.weekday() < 5 or d in workdays) and d not in holiday_days
        theirs = (d.weekday() < 5 or d in other.weekend_workdays) and d not in other
        if mine != theirs:
            problems.append(f"{d}: chinesecalendar+corrections={mine} holidays={theirs}")
        d += dt.timedelta(days=1)
    if problems:
        sys.exit("sources disagree:\n" + "\n".join(problems))

    # `chinesecalendar` sometimes leaves out a weekend day inside a holiday (2012-06-23, the
    # Dragon Boat Festival itself, between the days off 06-22 and 06-24): a weekend gap of at
    # most two days between two days of one holiday belongs to it.
    for day in sorted(holiday_days):
        name = holiday_days[day]
        for gap in (1, 2):
            after = day + dt.timedelta(days=gap + 1)
            between = [day + dt.timedelta(days=k) for k in range(1, gap + 1)]
            if holiday_days.get(after) == name and all(
                    b.weekday() >= 5 and b not in holiday_days and b not in workdays for b in between):
                for b in between:
                    holiday_days[b] = name

    # Holiday ranges: maximal runs of consecutive days with one name, split at year ends.
    ranges = []
    for day in sorted(holiday_days):
        name = holiday_days[day]
        if ranges and ranges[-1][2] == name and ranges[-1][1] + dt.timedelta(days=1) == day \
                and ranges[-1][1].year == day.year:
            ranges[-1][1] = day
        else:
            ranges.append([day, day, name])

    # When Mid-Autumn touches National Day the notice arranges one holiday, named in the order
    # the festivals fall ("国庆节、中秋节" 2017, 2020, 2025; "中秋节、国庆节" 2012, 2023).
    merged = []
    for r in ranges:
        prev = merged[-1] if merged else None
        names = {prev[2], r[2]} if prev else set()
        touching = prev and prev[1] + dt.timedelta(days=1) == r[0] and prev[1].year == r[0].year
        festive = prev and set(prev[2].split("、")) | {r[2]} <= {"国庆节", "中秋节"}
        if touching and festive and names != {prev[2]}:
            lead = prev[2].split("、")[0]
            prev[1] = r[1]
            prev[2] = lead + "、" + ("中秋节" if lead == "国庆节" else "国庆节")
        elif touching and festive:
            prev[1] = r[1]
        else:
            merged.append(r)
    ranges = merged
    # 2020: Mid-Autumn fell on 10-01 itself; `chinesecalendar` names the whole range 国庆节.
    for r in ranges:
        days = [r[0] + dt.timedelta(days=k) for k in range((r[1] - r[0]).days + 1)]
        if r[2] == "国庆节" and any(
                "中秋节" in (other.get(d) or "") and "补假" not in (other.get(d) or "") for d in days
        ):
            r[2] = "国庆节、中秋节"

    # Every day the other source names as a day off must lie in one of our holiday ranges.
    for day, label in sorted(other.items()):
        if first <= day <= last and day not in holiday_days:
            print(f"note: {day} ({day.strftime('%a')}) is named {label} by `holidays` only")

    out = [
        "# Working-day calendar of mainland China (全国法定节假日与调休安排), 2004-2026.",
        "# Generated by calendars/tools/gen_cn_mainland.py from PyPI `chinesecalendar` 1.11.0,",
        "# cross-checked day by day with PyPI `holidays` 0.109 (calendars/fixtures/cn_mainland_days.txt).",
        "# Correction: 2005-12-31 (Saturday) is a make-up working day under 国办发明电〔2005〕35号;",
        "# the official notice wins over `chinesecalendar`, which misses it.",
        "# To add a year: copy the last year's block, fill it from the State Council notice, then run",
        "# `yimen calendar check calendars/cn_mainland.yaml`.",
        "name: cn_mainland",
        "title: 中国大陆（国务院放假安排）",
        "time_zone: Asia/Shanghai",
        "office_hours:",
        '  - "08:30-12:00"',
        '  - "14:30-17:30"',
        "years:",
    ]
    for year in range(FIRST, LAST + 1):
        out.append(f"  {year}:")
        out.append(f"    notice: {NOTICES[year]}")
        out.append("    holidays:")
        for start, end, name in ranges:
            if start.year != year:
                continue
            out.append(f"      - name: {name}")
            out.append(f"        from: {start}")
            out.append(f"        to: {end}")
            notice = notice_for(start, name, True)
            if notice != NOTICES[year]:
                out.append(f"        notice: {notice}")
        out.append("    make_up_days:")
        for day in sorted(w for w in workdays if w.year == year):
            festival = workdays[day]
            out.append(f"      - date: {day}")
            out.append(f"        name: {festival}补班")
            notice = notice_for(day, festival, False)
            if notice != NOTICES[year]:
                out.append(f"        notice: {notice}")
    with open(os.path.join(ROOT, "cn_mainland.yaml"), "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")

    lines = [
        "# Every date 2004-2026 from PyPI `holidays` 0.109 (China, zh_CN): date, workday|rest, name.",
        "# Independent of calendars/cn_mainland.yaml (built from `chinesecalendar`); compared day by",
        "# day by the engine's calendar tests. 2005-12-31 is a workday (国办发明电〔2005〕35号).",
    ]
    d = first
    while d <= last:
        work = (d.weekday() < 5 or d in other.weekend_workdays) and d not in other
        name = other.get(d) if d in other else None
        lines.append(f"{d} {'workday' if work else 'rest'}" + (f" {name}" if name else ""))
        d += dt.timedelta(days=1)
    with open(os.path.join(ROOT, "fixtures", "cn_mainland_days.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
