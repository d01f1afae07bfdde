/**
 * The web page of `whisper-ts serve`, driven in Debian's Chromium by playwright-core: upload jfk.wav, see the
 * segments with their times, download the .srt; a non-audio upload shows the engine's error. A screenshot goes to
 * test-artifacts/. Needs /usr/bin/chromium (`apt-get install -y chromium`).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVAL, JFK, ROOT, TINY_EN } from './helpers/paths.js';
import { startServerProcess, type ServerProcess } from './server-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');

describe('serve: the upload page in Chromium', () => {
  let server: ServerProcess;
  let context: BrowserContext;
  let page: Page;
  let profile: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
    server = await startServerProcess(['--model', TINY_EN, '--concurrency', '1']);
    profile = mkdtempSync(join(tmpdir(), 'wts-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
  });
  afterAll(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    expect(await server?.stop()).toBe(0);
  });

  it('uploads a file, shows segments with times as they arrive, and downloads the .srt', async () => {
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(server.url);
    await expect.poll(() => page.textContent('#server-info')).toContain('whisper-tiny.en');
    // an English-only model cannot translate: the page says so by disabling the choice
    expect(await page.isDisabled('#task option[value="translate"]')).toBe(true);

    await page.setInputFiles('#file', JFK);
    await page.click('#start');
    await page.locator('#status', { hasText: /^done/ }).waitFor({ timeout: 120_000 });
    const times = await page.locator('#segments li time').allTextContents();
    const texts = await page.locator('#segments li span').allTextContents();
    expect(times.length).toBeGreaterThanOrEqual(2);
    expect(texts.length).toBe(times.length);
    expect(times[0]).toMatch(/^00:00:00\.000 → 00:00:\d\d\.\d{3}$/);
    expect(texts.join(' ')).toMatch(/ask not what your country can do for you/i);
    expect(await page.textContent('#status')).toMatch(/done: \d+ segment\(s\), 11\.0 s of english audio/);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'server-page-upload.png'), fullPage: true });

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('button[data-format="srt"]')]);
    expect(download.suggestedFilename()).toBe('jfk.srt');
    const srt = readFileSync(await download.path(), 'utf8');
    expect(srt.startsWith('1\n00:00:00,000 --> ')).toBe(true);
    expect(srt.match(/ --> /g)?.length).toBe(times.length);
    expect(pageErrors).toEqual([]);
  });

  it('shows the engine error for a file that is not audio', async () => {
    await page.setInputFiles('#file', join(EVAL, 'README.md'));
    await page.click('#start');
    await page.locator('#status.error').waitFor({ timeout: 60_000 });
    expect(await page.textContent('#status')).toMatch(/E_AUDIO_DECODE/);
    expect(await page.$$('#segments li')).toHaveLength(0);
  });
});
