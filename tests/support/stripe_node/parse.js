// Parse deliveries with stripe-node: constructEvent for snapshot events, parseEventNotification for
// thin notifications. Input: DELIVERIES, a JSON file of [{body, signature, secret}]. Prints one JSON
// line: [{object, type, id} or {error}] in the same order.
'use strict';

const fs = require('fs');
const Stripe = require('stripe');

const stripe = new Stripe('sk_test_unused', {telemetry: false});
const parsed = JSON.parse(fs.readFileSync(process.env.DELIVERIES, 'utf8')).map(({body, signature, secret}) => {
  try {
    const thin = JSON.parse(body).object === 'v2.core.event';
    const event = thin ? stripe.parseEventNotification(body, signature, secret)
      : stripe.webhooks.constructEvent(body, signature, secret);
    return {object: event.object, type: event.type, id: event.id, context: event.context ? String(event.context) : null};
  } catch (error) {
    return {error: error.message};
  }
});
console.log(JSON.stringify(parsed));
